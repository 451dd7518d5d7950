# SPDX-License-Identifier: MIT
# pdev_rados.c: a pool's files as RADOS objects; built when librados was
# found (cmake/cluster.cmake sets EVFS_CLUSTER_LIBS and the evfs_rados target).
