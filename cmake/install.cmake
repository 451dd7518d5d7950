# SPDX-License-Identifier: MIT
# Installed files besides evfs and evfsctl (their install() rules sit with
# the targets, in fs/fuse/ and cli/), and the Debian package.
#
#   cmake --install build [--prefix /usr]    # /usr/local by default
#   cd build && cpack -G DEB                 # build/evfs_VERSION_ARCH.deb, prefix /usr
#
#   PREFIX/bin/evfs, PREFIX/bin/evfsctl
#   PREFIX/share/man/man8/evfs.8.gz, evfsctl.8.gz, man5/evfs.ini.5.gz   (once docs/man/ has them)
#   PREFIX/share/bash-completion/completions/evfsctl                    (once contrib/bash-completion/ has it)
#   PREFIX/share/doc/evfs/examples/evfs.ini
#   PREFIX/lib/systemd/system/evfs@.service     (EVFS_SYSTEMD_UNITDIR)
#
# The man pages and the completion script are optional: each is installed
# when its file exists at configure time.  CMake configures again by itself
# when docs/man/ or contrib/bash-completion/ appear or change.

set(EVFS_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
  "Directory of the systemd unit evfs@.service, relative to the install prefix or absolute")
set(EVFS_PACKAGE_MAINTAINER "Seed 0c3dcce6 maintainers <maintainers@users.noreply.r-seed-0c3dcce6.example>"
  CACHE STRING "Maintainer field of the Debian package")

# --- example configuration ------------------------------------------------
install(FILES ${PROJECT_SOURCE_DIR}/examples/evfs.ini DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# --- man pages (docs/man/, written on another branch) -----------------------
# Installed gzip -9n compressed, as Debian wants them; plain if there is no gzip.
find_program(EVFS_GZIP gzip)
mark_as_advanced(EVFS_GZIP)
set(_evfs_man_out)
foreach(_page evfs.8 evfsctl.8 evfs.ini.5)
  set(_src ${PROJECT_SOURCE_DIR}/docs/man/${_page})
  if(NOT EXISTS ${_src})
    continue()
  endif()
  string(REGEX REPLACE "^.*\\.([0-9])$" "\\1" _section ${_page})
  if(EVFS_GZIP)
    set(_out ${PROJECT_BINARY_DIR}/man/${_page}.gz)
    add_custom_command(OUTPUT ${_out}
      COMMAND ${CMAKE_COMMAND} -E copy ${_src} ${PROJECT_BINARY_DIR}/man/${_page}
      COMMAND ${EVFS_GZIP} -9nf ${PROJECT_BINARY_DIR}/man/${_page}
      DEPENDS ${_src} COMMENT "Compressing man page ${_page}" VERBATIM)
    list(APPEND _evfs_man_out ${_out})
  else()
    set(_out ${_src})
  endif()
  install(FILES ${_out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${_section})
endforeach()
if(_evfs_man_out)
  add_custom_target(evfs_man ALL DEPENDS ${_evfs_man_out})
endif()

# --- bash completion (contrib/bash-completion/, written on another branch) ---
if(EXISTS ${PROJECT_SOURCE_DIR}/contrib/bash-completion/evfsctl)
  install(FILES ${PROJECT_SOURCE_DIR}/contrib/bash-completion/evfsctl
    DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
endif()

# Configure again when the optional files appear: adding a file changes its
# directory's modification time.
foreach(_dir docs docs/man contrib contrib/bash-completion)
  if(IS_DIRECTORY ${PROJECT_SOURCE_DIR}/${_dir})
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/${_dir})
  endif()
endforeach()

# --- systemd unit ---------------------------------------------------------
# contrib/systemd/evfs@.service runs /usr/bin/evfs, where the package puts
# it.  At install time ExecStart= is pointed at the evfs being installed:
# PREFIX/bin/evfs (/usr/local/bin/evfs for a plain `cmake --install`;
# cpack installs with prefix /usr, so the package keeps /usr/bin/evfs).
install(CODE "set(EVFS_UNIT_SRC \"${PROJECT_SOURCE_DIR}/contrib/systemd/evfs@.service\")
set(EVFS_UNIT_OUT \"${PROJECT_BINARY_DIR}/contrib/systemd/evfs@.service\")
set(EVFS_UNIT_BINDIR \"${CMAKE_INSTALL_BINDIR}\")")
install(CODE [[
if(NOT IS_ABSOLUTE "${EVFS_UNIT_BINDIR}")
  set(EVFS_UNIT_BINDIR "${CMAKE_INSTALL_PREFIX}/${EVFS_UNIT_BINDIR}")
endif()
file(READ "${EVFS_UNIT_SRC}" _unit)
string(REPLACE "=/usr/bin/evfs " "=${EVFS_UNIT_BINDIR}/evfs " _unit "${_unit}")
file(WRITE "${EVFS_UNIT_OUT}" "${_unit}")
]])
install(FILES ${PROJECT_BINARY_DIR}/contrib/systemd/evfs@.service DESTINATION ${EVFS_SYSTEMD_UNITDIR})

# --- Debian package: cd build && cpack -G DEB --------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME evfs)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${EVFS_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "encrypted virtual disks kept as files, served by a FUSE mount")
set(CPACK_PACKAGE_DESCRIPTION
"evfs keeps virtual disks (volumes, snapshots, backups and images) encrypted
at rest in a store directory and presents them through a FUSE mount as plain
files that can be copied and loop-mounted.  Each 4 KiB chunk is sealed with
XChaCha20-Poly1305 under a per-lineage data key, itself wrapped by a master
key of the built-in key management service.

This package holds the mount daemon evfs (mount -t fuse.evfs, fstab), the
management tool evfsctl and the systemd unit evfs@.service.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${EVFS_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)               # evfs_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)                # libc6, libfuse3-3, libsodium23, ... (dpkg-shlibdeps)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")             # fusermount3 (unmount, the unit's ExecStop=), mount.fuse3
set(CPACK_STRIP_FILES ON)                             # RelWithDebInfo binaries without their debug info
# daemon-reload when systemd runs, so that it sees a new or changed unit
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/contrib/debian/postinst ${PROJECT_SOURCE_DIR}/contrib/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
