# SPDX-License-Identifier: MIT
# pdev_rados.c: a pool's files as RADOS objects; built when librados was
# found (cmake/cluster.cmake sets EVFS_CLUSTER_LIBS and the evfs_rados target).
# EVFS_HAVE_RADOS tells the engine (and whoever links it) the device exists.
if(EVFS_CLUSTER_LIBS)
  target_sources(evfs_engine PRIVATE ${CMAKE_CURRENT_LIST_DIR}/pdev_rados.c)
  target_link_libraries(evfs_engine PRIVATE evfs_rados)
  target_compile_definitions(evfs_engine PUBLIC EVFS_HAVE_RADOS=1)
endif()
