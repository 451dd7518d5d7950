# SPDX-License-Identifier: MIT
# evfs: the mount daemon (fs/main.c + the FUSE frontend fs/fs_ops.c).
# Included from fs/CMakeLists.txt.  This is the only target that links
# fuse3 (STYLE B1); the volume engine and store service come from fscore,
# the control-socket command handler (cli_run) from evfscli.
add_executable(evfs main.c fs_ops.c)
target_compile_definitions(evfs PRIVATE EVFS_VERSION="${PROJECT_VERSION}")
target_link_libraries(evfs PRIVATE fscore evfscli PkgConfig::FUSE3 PkgConfig::SODIUM)
install(TARGETS evfs DESTINATION bin)
