# The client libraries of tests/cluster/ (check_cluster): libpq through
# pkg-config, librados by its header and library (Debian's librados-dev
# ships no .pc file).  Optional: without them EVFS_CLUSTER_LIBS is OFF and
# the cluster_smoke ctest runs tests/cluster/skip.sh instead (exit 77, a
# failure when CI=true).  Nothing outside tests/ links these.
pkg_check_modules(LIBPQ IMPORTED_TARGET libpq)
find_path(RADOS_INCLUDE_DIR rados/librados.h)
find_library(RADOS_LIBRARY rados)
if(LIBPQ_FOUND AND RADOS_INCLUDE_DIR AND RADOS_LIBRARY)
  set(EVFS_CLUSTER_LIBS ON)
  if(NOT TARGET evfs_rados)
    add_library(evfs_rados UNKNOWN IMPORTED)
    set_target_properties(evfs_rados PROPERTIES IMPORTED_LOCATION "${RADOS_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${RADOS_INCLUDE_DIR}")
  endif()
else()
  set(EVFS_CLUSTER_LIBS OFF)
  set(EVFS_CLUSTER_MISSING "")
  if(NOT LIBPQ_FOUND)
    string(APPEND EVFS_CLUSTER_MISSING " libpq (libpq-dev)")
  endif()
  if(NOT RADOS_INCLUDE_DIR OR NOT RADOS_LIBRARY)
    string(APPEND EVFS_CLUSTER_MISSING " librados (librados-dev)")
  endif()
  message(STATUS "cluster_smoke will be skipped: not found:${EVFS_CLUSTER_MISSING}")
endif()
