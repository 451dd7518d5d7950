// SPDX-License-Identifier: MIT
/*
 * ctl.c - the mount's control socket (server and client); see ctl.h.
 *
 * Why forward whole command lines: while a store is mounted, the mount owns
 * the engine state (refcounts, attached keys).  Running evfsctl's command
 * inside the mount keeps one owner and makes snapshots, backups and
 * rollbacks consistent with every write the mount has acknowledged.  The
 * caller's identity comes from SO_PEERCRED; a request cannot claim a uid.
 * Commands run one at a time (cmd_lock); the data path never takes it.
 */
#include "ctl.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <sodium.h>

#define CTL_DIR "/run/evfs"
#define CTL_MAGIC 0x31435645u            /* "EVC1" little-endian */

struct ctl_server {
	struct store *s;
	store_command_fn fn;
	int fd;
	char path[108];
	pthread_t thread;
	pthread_mutex_t cmd_lock;        /* one command at a time */
};

int ctl_socket_path(const char *store_dir, char *out, size_t outsz)
{
	char real[4096], hex[33];
	uint8_t h[16];

	if (!realpath(store_dir, real))
		return -errno;
	crypto_generichash(h, sizeof(h), (const uint8_t *)real, strlen(real), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, 8);
	if ((size_t)snprintf(out, outsz, "%s/%s.sock", CTL_DIR, hex) >= outsz)
		return -ENAMETOOLONG;
	return 0;
}

static int io_all(int fd, void *buf, size_t len, int wr)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = wr ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void ctl_request_free(struct ctl_request *r)
{
	for (int i = 0; i < r->argc; i++)
		free(r->argv[i]);
	r->argc = 0;
}

int ctl_request_parse(const uint8_t *buf, size_t len, struct ctl_request *r)
{
	size_t at = 12;
	uint32_t plen, argc;

	memset(r, 0, sizeof(*r));
	if (len < 12 || get32(buf) != CTL_MAGIC)
		return -EPROTO;
	r->flags = get32(buf + 4);
	plen = get32(buf + 8);
	if (plen >= sizeof(r->project) || len - at < plen + 4u)
		return -EPROTO;
	memcpy(r->project, buf + at, plen);
	r->project[plen] = 0;
	if (memchr(r->project, 0, plen))
		return -EPROTO;
	at += plen;
	argc = get32(buf + at);
	at += 4;
	if (argc > CTL_MAX_ARGS)
		return -EPROTO;
	for (uint32_t i = 0; i < argc; i++) {
		uint32_t l;

		if (len - at < 4)
			goto bad;
		l = get32(buf + at);
		at += 4;
		if (l > CTL_MAX_ARG || len - at < l || memchr(buf + at, 0, l))
			goto bad;
		r->argv[i] = strndup((const char *)buf + at, l);
		if (!r->argv[i])
			goto bad;
		r->argc++;
		at += l;
	}
	if (at != len)
		goto bad;
	return 0;
bad:
	ctl_request_free(r);
	return -EPROTO;
}

static int send_blob(int fd, const char *p, size_t n)
{
	uint8_t l[4];

	put32(l, (uint32_t)n);
	int rc = io_all(fd, l, 4, 1);

	return rc ? rc : (n ? io_all(fd, (void *)p, n, 1) : 0);
}

/* The caller's progress stream: each write becomes one progress frame.  A
 * client that went away makes the writes fail, not the command. */
static ssize_t progress_frame_write(void *cookie, const char *buf, size_t n)
{
	int fd = *(int *)cookie;
	uint8_t tag[4];

	put32(tag, CTL_FRAME_PROGRESS);
	if (io_all(fd, tag, 4, 1) < 0 || send_blob(fd, buf, n) < 0)
		return -1;
	return (ssize_t)n;
}

struct conn {
	struct ctl_server *srv;
	int fd;
};

static void *conn_main(void *arg)
{
	struct conn *cn = arg;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	uint8_t lenb[4], *buf = NULL, code[4];
	struct ctl_request req;
	char *ob = NULL, *eb = NULL;
	size_t on = 0, en = 0;
	uint32_t len;

	if (getsockopt(cn->fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || io_all(cn->fd, lenb, 4, 0) < 0)
		goto out;
	len = get32(lenb);
	if (len > CTL_MAX_ARGS * (CTL_MAX_ARG + 4) + 128 || !(buf = malloc(len ? len : 1)) ||
	    io_all(cn->fd, buf, len, 0) < 0 || ctl_request_parse(buf, len, &req) < 0)
		goto out;
	{
		FILE *out = open_memstream(&ob, &on), *err = open_memstream(&eb, &en), *bar = NULL;
		struct store_caller c;
		int rc = 1;

		if ((req.flags & (CTL_PROGRESS | CTL_JSON)) == CTL_PROGRESS) {
			bar = fopencookie(&cn->fd, "w", (cookie_io_functions_t){ .write = progress_frame_write });
			if (bar)
				setvbuf(bar, NULL, _IONBF, 0);
		}
		if (out && err) {
			store_caller_init(cn->srv->s, &c, cr.uid, cr.gid, req.project[0] ? req.project : NULL);
			c.progress = bar;
			pthread_mutex_lock(&cn->srv->cmd_lock);
			rc = cn->srv->fn(cn->srv->s, &c, (req.flags & CTL_JSON) != 0, req.argc, req.argv, out, err);
			pthread_mutex_unlock(&cn->srv->cmd_lock);
		}
		if (out)
			fclose(out);
		if (err)
			fclose(err);
		if (bar)
			fclose(bar);
		ctl_request_free(&req);
		put32(code, (uint32_t)rc);
		if (io_all(cn->fd, code, 4, 1) == 0 && send_blob(cn->fd, ob, on) == 0)
			(void)send_blob(cn->fd, eb, en);
	}
out:
	free(ob);
	free(eb);
	free(buf);
	close(cn->fd);
	free(cn);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct ctl_server *srv = arg;

	for (;;) {
		int fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC);
		struct conn *cn;
		pthread_t t;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;     /* socket shut down */
		}
		cn = malloc(sizeof(*cn));
		if (!cn) {
			close(fd);
			continue;
		}
		cn->srv = srv;
		cn->fd = fd;
		if (pthread_create(&t, NULL, conn_main, cn) != 0) {
			close(fd);
			free(cn);
			continue;
		}
		pthread_detach(t);
	}
}

/*
 * CTL_DIR must be searchable by everyone: the sockets in it are 0666 and
 * SO_PEERCRED decides what a caller may do (R27).  The mount runs with
 * umask 077, which would make a fresh mkdir 0700 and lock every other user
 * out ("cannot talk to the mount: Permission denied"), so set the mode
 * explicitly, also on a directory an older version left 0700.
 */
static void ctl_dir_make(void)
{
	struct stat st;

	(void)mkdir(CTL_DIR, 0755);
	if (lstat(CTL_DIR, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
	    (st.st_mode & 07777) != 0755)
		(void)chmod(CTL_DIR, 0755);
}

int ctl_server_start(struct ctl_server **out, struct store *s, store_command_fn fn)
{
	struct ctl_server *srv = calloc(1, sizeof(*srv));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int rc;

	if (!srv)
		return -ENOMEM;
	srv->s = s;
	srv->fn = fn;
	pthread_mutex_init(&srv->cmd_lock, NULL);
	ctl_dir_make();
	rc = ctl_socket_path(store_dir(s), srv->path, sizeof(srv->path));
	if (rc)
		goto fail;
	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv->fd < 0) {
		rc = -errno;
		goto fail;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", srv->path);
	(void)unlink(srv->path);       /* we hold the store lock: any old socket is stale */
	if (bind(srv->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(srv->path, 0666) < 0 ||
	    listen(srv->fd, 16) < 0) {
		rc = -errno;
		close(srv->fd);
		goto fail;
	}
	rc = -pthread_create(&srv->thread, NULL, accept_main, srv);
	if (rc) {
		close(srv->fd);
		(void)unlink(srv->path);
		goto fail;
	}
	*out = srv;
	return 0;
fail:
	pthread_mutex_destroy(&srv->cmd_lock);
	free(srv);
	return rc;
}

void ctl_server_stop(struct ctl_server *srv)
{
	if (!srv)
		return;
	(void)unlink(srv->path);
	shutdown(srv->fd, SHUT_RDWR);
	pthread_join(srv->thread, NULL);
	close(srv->fd);
	/* Wait for a running command to finish before the store goes. */
	pthread_mutex_lock(&srv->cmd_lock);
	pthread_mutex_unlock(&srv->cmd_lock);
	pthread_mutex_destroy(&srv->cmd_lock);
	free(srv);
}

static int recv_blob(int fd, FILE *to)
{
	uint8_t l[4], buf[65536];
	uint32_t n;
	int rc = io_all(fd, l, 4, 0);

	if (rc)
		return rc;
	n = get32(l);
	if (n > CTL_MAX_REPLY)
		return -EPROTO;
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);

		rc = io_all(fd, buf, k, 0);
		if (rc)
			return rc;
		fwrite(buf, 1, k, to);
		n -= (uint32_t)k;
	}
	return 0;
}

/* The request from "EVC1" on into buf (16 + strlen(project) + the args'
 * 4 + length bytes); returns its length. */
static size_t request_body(uint8_t *buf, unsigned flags, const char *project, int argc, char **argv)
{
	size_t at = 12;

	put32(buf, CTL_MAGIC);
	put32(buf + 4, flags & (CTL_JSON | CTL_PROGRESS));
	put32(buf + 8, project ? (uint32_t)strlen(project) : 0u);
	if (project) {
		memcpy(buf + at, project, strlen(project));
		at += strlen(project);
	}
	put32(buf + at, (uint32_t)argc);
	at += 4;
	for (int i = 0; i < argc; i++) {
		put32(buf + at, (uint32_t)strlen(argv[i]));
		memcpy(buf + at + 4, argv[i], strlen(argv[i]));
		at += 4 + strlen(argv[i]);
	}
	return at;
}

int ctl_client_run(const char *store_dir, const char *project, unsigned flags, int argc, char **argv, FILE *out,
		   FILE *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = 20 + (project ? strlen(project) : 0), at = 0;
	uint8_t *buf, code[4];
	int fd, rc;

	if (argc > (int)CTL_MAX_ARGS)
		return -E2BIG;
	rc = ctl_socket_path(store_dir, sa.sun_path, sizeof(sa.sun_path));
	if (rc)
		return rc == -EACCES ? -ENOENT : rc;
	for (int i = 0; i < argc; i++) {
		if (strlen(argv[i]) > CTL_MAX_ARG)
			return -E2BIG;
		len += 4 + strlen(argv[i]);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = errno == ENOENT || errno == ECONNREFUSED ? -ENOENT : -errno;
		close(fd);
		return rc;
	}
	buf = malloc(len);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	put32(buf, 0);   /* length, filled in below */
	at = 4 + request_body(buf + 4, flags, project, argc, argv);
	put32(buf, (uint32_t)(at - 4));
	rc = io_all(fd, buf, at, 1);
	free(buf);
	while (!rc && (rc = io_all(fd, code, 4, 0)) == 0 && get32(code) == CTL_FRAME_PROGRESS) {
		rc = recv_blob(fd, err);
		fflush(err);
	}
	if (!rc)
		rc = recv_blob(fd, out);
	if (!rc)
		rc = recv_blob(fd, err);
	close(fd);
	return rc ? rc : (int)get32(code);
}

/* ========================= requests between hosts ====================== */

#define FWD_MAGIC 0x31465645u            /* "EVF1" little-endian */

/* Only what a host must run for another: commands on a volume attached
 * there that read its data (the rest is refused naming that host). */
static int forwardable(int argc, char **argv)
{
	return argc >= 2 && strcmp(argv[1], "create") == 0 &&
	       (!strcmp(argv[0], "snapshot") || !strcmp(argv[0], "image") || !strcmp(argv[0], "backup"));
}

int ctl_forward_build(const struct store_caller *c, unsigned flags, int argc, char **argv, void **req, size_t *len)
{
	size_t n = 12 + 16 + strlen(c->project);
	uint8_t *buf;

	*req = NULL;
	if (argc > (int)CTL_MAX_ARGS || !forwardable(argc, argv))
		return -EINVAL;
	for (int i = 0; i < argc; i++) {
		if (strlen(argv[i]) > CTL_MAX_ARG)
			return -E2BIG;
		n += 4 + strlen(argv[i]);
	}
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	put32(buf, FWD_MAGIC);
	put32(buf + 4, c->uid);
	put32(buf + 8, c->gid);
	*len = 12 + request_body(buf + 12, flags, c->project, argc, argv);
	*req = buf;
	return 0;
}

void ctl_forward_serve(void *ctx, const void *req, size_t len, void **reply, size_t *rlen)
{
	struct ctl_server *srv = ctx;
	const uint8_t *b = req;
	struct ctl_request r;
	struct store_caller c;
	char *ob = NULL, *eb = NULL;
	size_t on = 0, en = 0;
	FILE *out, *err;
	uint8_t *rep;
	int rc = 1;

	*reply = NULL;
	*rlen = 0;
	if (len < 12 || get32(b) != FWD_MAGIC || ctl_request_parse(b + 12, len - 12, &r) < 0)
		return;
	if (!forwardable(r.argc, r.argv)) {
		ctl_request_free(&r);
		return;
	}
	out = open_memstream(&ob, &on);
	err = open_memstream(&eb, &en);
	if (out && err) {
		/* The requesting mount took uid and gid from its own caller's
		 * SO_PEERCRED; hosts of one store trust each other's mounts. */
		store_caller_init(srv->s, &c, get32(b + 4), get32(b + 8), r.project[0] ? r.project : NULL);
		pthread_mutex_lock(&srv->cmd_lock);
		rc = srv->fn(srv->s, &c, (r.flags & CTL_JSON) != 0, r.argc, r.argv, out, err);
		pthread_mutex_unlock(&srv->cmd_lock);
	}
	if (out)
		fclose(out);
	if (err)
		fclose(err);
	ctl_request_free(&r);
	rep = malloc(12 + on + en);
	if (rep) {
		put32(rep, (uint32_t)rc);
		put32(rep + 4, (uint32_t)on);
		memcpy(rep + 8, ob, on);
		put32(rep + 8 + on, (uint32_t)en);
		memcpy(rep + 12 + on, eb, en);
		*reply = rep;
		*rlen = 12 + on + en;
	}
	free(ob);
	free(eb);
}

int ctl_forward_reply(const void *reply, size_t rlen, FILE *out, FILE *err)
{
	const uint8_t *b = reply;
	uint32_t on, en;

	if (rlen < 12 || get32(b) > 255 || (on = get32(b + 4)) > rlen - 12 || (en = get32(b + 8 + on)) != rlen - 12 - on)
		return -EPROTO;               /* an exit code is 0..255 */
	fwrite(b + 8, 1, on, out);
	fwrite(b + 12 + on, 1, en, err);
	return (int)get32(b);
}
