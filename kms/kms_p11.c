/* SPDX-License-Identifier: MIT */
/*
 * kms_p11.c - the root key in a PKCS#11 token (R34).
 *
 * With root_kind KMS_ROOT_PKCS11 the root key is an AES-256 secret key object
 * inside a token (CKA_TOKEN, CKA_SENSITIVE, not CKA_EXTRACTABLE): evfs never
 * holds it.  Everything the local backends do with root-derived subkeys is
 * done by asking the token to encrypt or decrypt with CKM_AES_GCM:
 *
 *     sealed = IV (12, random per seal) | ciphertext | tag (16)
 *
 * with caller-chosen associated data (the CMK's id and version, see
 * kms_cmk.c; fixed strings for the verifier and the audit key, see kms.c).
 * docs/kms-pkcs11.md explains the design.
 *
 * The module (a shared object) is loaded with dlopen and C_GetFunctionList.
 * PKCS#11 allows one C_Initialize per process, so loaded modules live in a
 * small process-wide table with a reference count: several struct kms (and
 * kms_create while another store is open) share one initialisation, and the
 * last kms_p11_close finalises and unloads it.  The module is initialised
 * with CKF_OS_LOCKING_OK, so sessions of different struct kms may be used by
 * different threads; one struct kms has exactly one session, used only
 * under k->lock (or before the handle is published, in create/open).
 *
 * Login state belongs to the token, not the session: a second open of the
 * same token gets CKR_USER_ALREADY_LOGGED_IN, which is fine.  We never call
 * C_Logout (it would log out the other handles); closing the last session
 * logs the application out.
 *
 * The PIN is read from pin_path into sodium_malloc memory, first line,
 * trailing newline stripped, and freed (wiped) right after C_Login.
 *
 * Errors (negative errno; the message goes to the log callback, the caller
 * adds the store's words):
 *   -ENOENT       module file missing
 *   -ELIBBAD      not a PKCS#11 module (dlopen or C_GetFunctionList failed)
 *   -ENODEV       no token with that label (the labels present are logged)
 *   -EACCES       wrong PIN (CKR_PIN_INCORRECT)
 *   -EPERM        PIN locked
 *   -ENOKEY       no AES secret key with that label (open)
 *   -ENOTUNIQ     several keys with that label
 *   -EOPNOTSUPP   token without CKM_AES_GCM (or AES key generation at create)
 *   -EBADMSG      a sealed blob does not decrypt/authenticate under the key
 *   -EIO          any other token failure (the CKR_ code is logged)
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <p11-kit/pkcs11.h>

#include "kms_internal.h"

#define P11_LABEL_MAX 32u          /* CK_TOKEN_INFO.label */
#define P11_PIN_MAX 256u
#define P11_MODULES 4

struct p11_module {
	char path[4096];
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	int refs;
	int initialised;               /* our C_Initialize: C_Finalize at the end */
};

static pthread_mutex_t p11_modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct p11_module p11_modules[P11_MODULES];

struct kms_p11 {
	struct p11_module *mod;
	CK_FUNCTION_LIST_PTR f;
	CK_SESSION_HANDLE session;
	int have_session;
	CK_OBJECT_HANDLE key;
	char token[P11_LABEL_MAX + 1];
	char key_label[KMS_ALIAS_MAX];
	uint8_t *buf;                  /* sodium_malloc: decrypt output staging */
};

#define P11_BUF_BYTES 256u

#define P11_LOG(fn, ctx, lvl, ...) kms_logf((fn), (ctx), (lvl), __VA_ARGS__)

/* ---------------------------------------------------------------- modules */

static int module_get(const char *path, struct p11_module **out, kms_log_fn log, void *lctx)
{
	CK_C_GetFunctionList getfl;
	CK_C_INITIALIZE_ARGS args;
	struct p11_module *m = NULL;
	struct stat st;
	CK_RV rv;
	int i, rc = 0;

	if (stat(path, &st) < 0) {
		rc = -errno;
		P11_LOG(log, lctx, LOG_ERR, "kms: PKCS#11 module %s: cannot be found (error %d); install it or fix "
			"pkcs11_module", path, rc);
		return rc;
	}
	pthread_mutex_lock(&p11_modules_lock);
	for (i = 0; i < P11_MODULES; i++)
		if (p11_modules[i].refs > 0 && strcmp(p11_modules[i].path, path) == 0) {
			p11_modules[i].refs++;
			*out = &p11_modules[i];
			goto done;
		}
	for (i = 0; i < P11_MODULES && !m; i++)
		if (p11_modules[i].refs == 0)
			m = &p11_modules[i];
	if (!m || strlen(path) >= sizeof(m->path)) {
		rc = -ENOMEM;
		goto done;
	}
	m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!m->dl) {
		P11_LOG(log, lctx, LOG_ERR, "kms: PKCS#11 module %s cannot be loaded: %s", path, dlerror());
		rc = -ELIBBAD;
		goto done;
	}
	*(void **)&getfl = dlsym(m->dl, "C_GetFunctionList");
	if (!getfl || getfl(&m->f) != CKR_OK || !m->f) {
		P11_LOG(log, lctx, LOG_ERR, "kms: %s is not a PKCS#11 module (no usable C_GetFunctionList)", path);
		dlclose(m->dl);
		m->dl = NULL;
		rc = -ELIBBAD;
		goto done;
	}
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = m->f->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		P11_LOG(log, lctx, LOG_ERR, "kms: PKCS#11 module %s: C_Initialize failed (CKR 0x%lx)", path,
			(unsigned long)rv);
		dlclose(m->dl);
		m->dl = NULL;
		rc = -EIO;
		goto done;
	}
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->refs = 1;
	m->initialised = rv == CKR_OK;  /* else someone else in the process did */
	*out = m;
done:
	pthread_mutex_unlock(&p11_modules_lock);
	return rc;
}

static void module_put(struct p11_module *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&p11_modules_lock);
	if (--m->refs == 0) {
		if (m->initialised)
			(void)m->f->C_Finalize(NULL);
		dlclose(m->dl);
		memset(m, 0, sizeof(*m));
	}
	pthread_mutex_unlock(&p11_modules_lock);
}

/* ------------------------------------------------------------------ helpers */

static void label_trim(char out[static P11_LABEL_MAX + 1], const CK_UTF8CHAR *in)
{
	size_t n = P11_LABEL_MAX;

	memcpy(out, in, P11_LABEL_MAX);
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\0'))
		n--;
	out[n] = '\0';
}

/* Generic CKR -> errno for failures after the session is open. */
static int rv_errno(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
		return 0;
	case CKR_HOST_MEMORY:
	case CKR_DEVICE_MEMORY:
		return -ENOMEM;
	case CKR_ENCRYPTED_DATA_INVALID:
	case CKR_ENCRYPTED_DATA_LEN_RANGE:
	case CKR_DATA_INVALID:
		return -EBADMSG;
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
		return -EOPNOTSUPP;
	case CKR_KEY_HANDLE_INVALID:
		return -ENOKEY;
	default:
		return -EIO;
	}
}

/* First line of path into pin (sodium_malloc, P11_PIN_MAX), *len set. */
static int pin_read(const char *path, uint8_t *pin, size_t *len)
{
	size_t off = 0;
	uint8_t *nl;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (off < P11_PIN_MAX) {
		ssize_t r = read(fd, pin + off, P11_PIN_MAX - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;

			close(fd);
			return e;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	nl = memchr(pin, '\n', off);
	if (!nl && off == P11_PIN_MAX)
		return -EINVAL;
	*len = nl ? (size_t)(nl - pin) : off;
	if (*len > 0 && pin[*len - 1] == '\r')
		(*len)--;
	return *len == 0 ? -EINVAL : 0;
}

static int slot_find(struct kms_p11 *p, const char *label, CK_SLOT_ID *slot, kms_log_fn log, void *lctx)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i;
	char seen[512] = "", one[P11_LABEL_MAX + 1];
	size_t used = 0;
	int found = 0;
	CK_RV rv;

	rv = p->f->C_GetSlotList(CK_TRUE, NULL, &n);
	if (rv == CKR_OK && n > 0) {
		slots = calloc(n, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
	}
	if (rv != CKR_OK) {
		free(slots);
		P11_LOG(log, lctx, LOG_ERR, "kms: PKCS#11 module %s: C_GetSlotList failed (CKR 0x%lx)", p->mod->path,
			(unsigned long)rv);
		return -EIO;
	}
	for (i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;

		if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		label_trim(one, ti.label);
		if (!found && strcmp(one, label) == 0) {
			*slot = slots[i];
			found = 1;
		}
		if (used < sizeof(seen))
			used += (size_t)snprintf(seen + used, sizeof(seen) - used, "%s\"%s\"", used ? ", " : "", one);
	}
	free(slots);
	if (!found) {
		P11_LOG(log, lctx, LOG_ERR, "kms: no token labelled \"%s\" in PKCS#11 module %s (tokens present: %s);"
			" plug it in, initialise it, or fix pkcs11_token", label, p->mod->path,
			seen[0] ? seen : "none");
		return -ENODEV;
	}
	return 0;
}

static int mech_check(struct kms_p11 *p, CK_SLOT_ID slot, int create, kms_log_fn log, void *lctx)
{
	CK_MECHANISM_INFO mi;
	CK_RV rv = p->f->C_GetMechanismInfo(slot, CKM_AES_GCM, &mi);

	/* ulMaxKeySize is in bytes or in bits depending on the token: 32
	 * bytes and 256 bits both pass. */
	if (rv != CKR_OK || !(mi.flags & CKF_ENCRYPT) || !(mi.flags & CKF_DECRYPT) || mi.ulMaxKeySize < 32) {
		P11_LOG(log, lctx, LOG_ERR, "kms: token \"%s\" does not support AES-GCM encryption with 256-bit keys"
			" (CKM_AES_GCM); use a token that does", p->token);
		return -EOPNOTSUPP;
	}
	if (create && p->f->C_GetMechanismInfo(slot, CKM_AES_KEY_GEN, &mi) != CKR_OK) {
		P11_LOG(log, lctx, LOG_ERR, "kms: token \"%s\" cannot generate AES keys (CKM_AES_KEY_GEN)", p->token);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int login(struct kms_p11 *p, const char *pin_path, kms_log_fn log, void *lctx)
{
	uint8_t *pin = sodium_malloc(P11_PIN_MAX);
	size_t len = 0;
	CK_RV rv;
	int rc;

	if (!pin)
		return -ENOMEM;
	rc = pin_read(pin_path, pin, &len);
	if (rc < 0) {
		P11_LOG(log, lctx, LOG_ERR, "kms: PIN file %s for token \"%s\" %s (error %d); fix pkcs11_pin_file",
			pin_path, p->token, rc == -EINVAL ? "is empty or its first line too long" : "cannot be read",
			rc);
		sodium_free(pin);
		return rc;
	}
	rv = p->f->C_Login(p->session, CKU_USER, pin, (CK_ULONG)len);
	sodium_free(pin);          /* wipes */
	switch (rv) {
	case CKR_OK:
	case CKR_USER_ALREADY_LOGGED_IN:
		return 0;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		P11_LOG(log, lctx, LOG_ERR, "kms: wrong PIN for token \"%s\": check pkcs11_pin_file (%s)", p->token,
			pin_path);
		return -EACCES;
	case CKR_PIN_LOCKED:
	case CKR_PIN_EXPIRED:
		P11_LOG(log, lctx, LOG_ERR, "kms: the user PIN of token \"%s\" is %s; the token's security officer "
			"must reset it", p->token, rv == CKR_PIN_LOCKED ? "locked" : "expired");
		return -EPERM;
	case CKR_USER_PIN_NOT_INITIALIZED:
		P11_LOG(log, lctx, LOG_ERR, "kms: token \"%s\" has no user PIN yet; initialise it (softhsm2-util "
			"--init-token or the token's tool)", p->token);
		return -EPERM;
	default:
		P11_LOG(log, lctx, LOG_ERR, "kms: login to token \"%s\" failed (CKR 0x%lx)", p->token,
			(unsigned long)rv);
		return -EIO;
	}
}

/* Find the key object; with create, generate it when missing. */
static int key_find(struct kms_p11 *p, int create, kms_log_fn log, void *lctx)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG vlen = KMS_KEY_BYTES, n = 0;
	CK_OBJECT_HANDLE h[2];
	CK_ATTRIBUTE find[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, p->key_label, strlen(p->key_label) },
	};
	CK_RV rv;

	rv = p->f->C_FindObjectsInit(p->session, find, 2);
	if (rv == CKR_OK) {
		rv = p->f->C_FindObjects(p->session, h, 2, &n);
		(void)p->f->C_FindObjectsFinal(p->session);
	}
	if (rv != CKR_OK) {
		P11_LOG(log, lctx, LOG_ERR, "kms: token \"%s\": searching for key \"%s\" failed (CKR 0x%lx)", p->token,
			p->key_label, (unsigned long)rv);
		return -EIO;
	}
	if (n > 1) {
		P11_LOG(log, lctx, LOG_ERR, "kms: token \"%s\" holds several secret keys labelled \"%s\"; "
			"relabel or remove the extra ones", p->token, p->key_label);
		return -ENOTUNIQ;
	}
	if (n == 1) {
		CK_KEY_TYPE got = 0;
		CK_BBOOL ext = CK_TRUE, sens = CK_FALSE;
		CK_ATTRIBUTE a[] = {
			{ CKA_KEY_TYPE, &got, sizeof(got) },
			{ CKA_EXTRACTABLE, &ext, sizeof(ext) },
			{ CKA_SENSITIVE, &sens, sizeof(sens) },
		};

		rv = p->f->C_GetAttributeValue(p->session, h[0], a, 3);
		if (rv != CKR_OK || got != CKK_AES) {
			P11_LOG(log, lctx, LOG_ERR, "kms: key \"%s\" on token \"%s\" is not an AES key", p->key_label,
				p->token);
			return -ENOKEY;
		}
		if (ext || !sens)
			P11_LOG(log, lctx, LOG_WARNING, "kms: key \"%s\" on token \"%s\" is %s: the token would let it "
				"out; prefer a sensitive, non-extractable key", p->key_label, p->token,
				ext ? "extractable" : "not sensitive");
		p->key = h[0];
		return 0;
	}
	if (!create) {
		P11_LOG(log, lctx, LOG_ERR, "kms: no AES key labelled \"%s\" on token \"%s\"; fix pkcs11_key or "
			"restore the key (a new one cannot open this store)", p->key_label, p->token);
		return -ENOKEY;
	}
	{
		CK_MECHANISM mech = { CKM_AES_KEY_GEN, NULL, 0 };
		CK_ATTRIBUTE tmpl[] = {
			{ CKA_CLASS, &cls, sizeof(cls) },
			{ CKA_KEY_TYPE, &kt, sizeof(kt) },
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &yes, sizeof(yes) },
			{ CKA_SENSITIVE, &yes, sizeof(yes) },
			{ CKA_EXTRACTABLE, &no, sizeof(no) },
			{ CKA_ENCRYPT, &yes, sizeof(yes) },
			{ CKA_DECRYPT, &yes, sizeof(yes) },
			{ CKA_WRAP, &no, sizeof(no) },
			{ CKA_UNWRAP, &no, sizeof(no) },
			{ CKA_VALUE_LEN, &vlen, sizeof(vlen) },
			{ CKA_LABEL, p->key_label, strlen(p->key_label) },
		};

		rv = p->f->C_GenerateKey(p->session, &mech, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &p->key);
		if (rv != CKR_OK) {
			P11_LOG(log, lctx, LOG_ERR, "kms: token \"%s\" cannot generate the AES-256 key \"%s\" "
				"(CKR 0x%lx)", p->token, p->key_label, (unsigned long)rv);
			return rv == CKR_MECHANISM_INVALID ? -EOPNOTSUPP : -EIO;
		}
		P11_LOG(log, lctx, LOG_NOTICE, "kms: generated AES-256 key \"%s\" on token \"%s\" (sensitive, "
			"not extractable)", p->key_label, p->token);
	}
	return 0;
}

/* ------------------------------------------------------------------ public */

void kms_p11_close(struct kms_p11 *p)
{
	if (!p)
		return;
	if (p->have_session)
		(void)p->f->C_CloseSession(p->session);
	module_put(p->mod);
	sodium_free(p->buf);
	free(p);
}

int kms_p11_open(const struct kms_options *opt, int create, struct kms_p11 **out)
{
	kms_log_fn log = opt->log;
	void *lctx = opt->log_ctx;
	struct kms_p11 *p;
	CK_SLOT_ID slot = 0;
	CK_RV rv;
	int rc;

	*out = NULL;
	if (!opt->pkcs11_module || !*opt->pkcs11_module || !opt->pkcs11_token || !*opt->pkcs11_token ||
	    strlen(opt->pkcs11_token) > P11_LABEL_MAX || !opt->secret_path || !*opt->secret_path)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->buf = sodium_malloc(P11_BUF_BYTES);
	if (!p->buf) {
		free(p);
		return -ENOMEM;
	}
	snprintf(p->token, sizeof(p->token), "%s", opt->pkcs11_token);
	snprintf(p->key_label, sizeof(p->key_label), "%s",
		 opt->pkcs11_key && *opt->pkcs11_key ? opt->pkcs11_key : KMS_PKCS11_KEY_DEFAULT);
	rc = module_get(opt->pkcs11_module, &p->mod, log, lctx);
	if (rc < 0) {
		sodium_free(p->buf);
		free(p);
		return rc;
	}
	p->f = p->mod->f;
	if ((rc = slot_find(p, p->token, &slot, log, lctx)) < 0 || (rc = mech_check(p, slot, create, log, lctx)) < 0)
		goto fail;
	/* Read-write: the freshness notes are token objects (kms_fresh.c).  A
	 * write-protected token still opens, read-only; the notes then fail
	 * to be written and say so. */
	rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &p->session);
	if (!create && (rv == CKR_TOKEN_WRITE_PROTECTED || rv == CKR_SESSION_READ_WRITE_SO_EXISTS))
		rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &p->session);
	if (rv != CKR_OK) {
		P11_LOG(log, lctx, LOG_ERR, "kms: cannot open a session on token \"%s\" (CKR 0x%lx)", p->token,
			(unsigned long)rv);
		rc = -EIO;
		goto fail;
	}
	p->have_session = 1;
	if ((rc = login(p, opt->secret_path, log, lctx)) < 0 || (rc = key_find(p, create, log, lctx)) < 0)
		goto fail;
	*out = p;
	return 0;
fail:
	kms_p11_close(p);
	return rc;
}

int kms_p11_seal(struct kms *k, const uint8_t *plain, size_t n, const uint8_t *ad, size_t adn, uint8_t *out)
{
	struct kms_p11 *p = k->p11;
	CK_GCM_PARAMS gp;
	CK_MECHANISM mech = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_ULONG outlen = n + KMS_P11_TAG_BYTES;
	CK_RV rv;

	if (n + KMS_P11_OVERHEAD > P11_BUF_BYTES)
		return -EINVAL;
	randombytes_buf(out, KMS_P11_IV_BYTES);
	memset(&gp, 0, sizeof(gp));
	gp.pIv = out;
	gp.ulIvLen = KMS_P11_IV_BYTES;
	gp.ulIvBits = KMS_P11_IV_BYTES * 8;
	gp.pAAD = (CK_BYTE_PTR)ad;
	gp.ulAADLen = adn;
	gp.ulTagBits = KMS_P11_TAG_BYTES * 8;
	rv = p->f->C_EncryptInit(p->session, &mech, p->key);
	if (rv == CKR_OK)
		rv = p->f->C_Encrypt(p->session, (CK_BYTE_PTR)plain, n, out + KMS_P11_IV_BYTES, &outlen);
	if (rv == CKR_OK && outlen != n + KMS_P11_TAG_BYTES)
		rv = CKR_GENERAL_ERROR;
	if (rv != CKR_OK) {
		KMS_LOG(k, LOG_ERR, "kms: token \"%s\" failed to encrypt with key \"%s\" (CKR 0x%lx)", p->token,
			p->key_label, (unsigned long)rv);
		return rv_errno(rv) == -EBADMSG ? -EIO : rv_errno(rv);
	}
	return 0;
}

int kms_p11_unseal(struct kms *k, const uint8_t *sealed, size_t sn, const uint8_t *ad, size_t adn, uint8_t *plain)
{
	struct kms_p11 *p = k->p11;
	CK_GCM_PARAMS gp;
	CK_MECHANISM mech = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_ULONG outlen = P11_BUF_BYTES;
	size_t n;
	CK_RV rv;
	int rc;

	if (sn < KMS_P11_OVERHEAD || sn > P11_BUF_BYTES)
		return -EBADMSG;
	n = sn - KMS_P11_OVERHEAD;
	memset(&gp, 0, sizeof(gp));
	gp.pIv = (CK_BYTE_PTR)sealed;
	gp.ulIvLen = KMS_P11_IV_BYTES;
	gp.ulIvBits = KMS_P11_IV_BYTES * 8;
	gp.pAAD = (CK_BYTE_PTR)ad;
	gp.ulAADLen = adn;
	gp.ulTagBits = KMS_P11_TAG_BYTES * 8;
	rv = p->f->C_DecryptInit(p->session, &mech, p->key);
	if (rv == CKR_OK)
		rv = p->f->C_Decrypt(p->session, (CK_BYTE_PTR)sealed + KMS_P11_IV_BYTES, sn - KMS_P11_IV_BYTES, p->buf,
				     &outlen);
	if (rv == CKR_OK && outlen != n)
		rv = CKR_ENCRYPTED_DATA_INVALID;
	if (rv != CKR_OK) {
		sodium_memzero(p->buf, P11_BUF_BYTES);
		rc = rv_errno(rv);
		/* A GCM tag mismatch comes back as one of several codes
		 * depending on the token; none of them is a transport error. */
		if (rc == -EIO && (rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED))
			rc = -EBADMSG;
		if (rc != -EBADMSG)
			KMS_LOG(k, LOG_ERR, "kms: token \"%s\" failed to decrypt with key \"%s\" (CKR 0x%lx)",
				p->token, p->key_label, (unsigned long)rv);
		return rc;
	}
	memcpy(plain, p->buf, n);
	sodium_memzero(p->buf, P11_BUF_BYTES);
	return 0;
}

/* ------------------------------------------------------------------ notes */

#define NOTES_MAX 8u

/* The CKO_DATA objects of application "evfs" labelled `label` (at most
 * NOTES_MAX): their number, or a negative errno. */
static int notes_find(struct kms_p11 *p, const char *label, CK_OBJECT_HANDLE h[static NOTES_MAX])
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_ATTRIBUTE find[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_APPLICATION, (void *)KMS_P11_NOTE_APP, sizeof(KMS_P11_NOTE_APP) - 1 },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_ULONG n = 0;
	CK_RV rv;

	rv = p->f->C_FindObjectsInit(p->session, find, 3);
	if (rv == CKR_OK) {
		rv = p->f->C_FindObjects(p->session, h, NOTES_MAX, &n);
		(void)p->f->C_FindObjectsFinal(p->session);
	}
	return rv == CKR_OK ? (int)n : rv_errno(rv);
}

int kms_p11_note_each(struct kms *k, const char *label, int (*cb)(void *ctx, const uint8_t *val, size_t n),
		      void *ctx)
{
	struct kms_p11 *p = k->p11;
	CK_OBJECT_HANDLE h[NOTES_MAX];
	uint8_t val[KMS_P11_NOTE_MAX];
	int n = notes_find(p, label, h), rc = 0;

	if (n < 0) {
		KMS_LOG(k, LOG_ERR, "kms: token \"%s\": looking for the object \"%s\" failed (%d)", p->token, label, n);
		return n;
	}
	for (int i = 0; i < n && !rc; i++) {
		CK_ATTRIBUTE a = { CKA_VALUE, val, sizeof(val) };
		CK_RV rv = p->f->C_GetAttributeValue(p->session, h[i], &a, 1);

		if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
			KMS_LOG(k, LOG_ERR, "kms: token \"%s\": the object \"%s\" cannot be read (CKR 0x%lx)", p->token,
				label, (unsigned long)rv);
			return rv == CKR_BUFFER_TOO_SMALL ? -EUCLEAN : -EIO;
		}
		rc = cb(ctx, val, a.ulValueLen);
	}
	return rc < 0 ? rc : n;
}

/* Tokens may refuse to change CKA_VALUE (SoftHSM does): a new object is
 * created first and the older ones destroyed after, so a crash in between
 * leaves two, which kms_p11_note_each shows both of. */
int kms_p11_note_set(struct kms *k, const char *label, const uint8_t *val, size_t n)
{
	struct kms_p11 *p = k->p11;
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_OBJECT_HANDLE old[NOTES_MAX], h;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_APPLICATION, (void *)KMS_P11_NOTE_APP, sizeof(KMS_P11_NOTE_APP) - 1 },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_VALUE, (void *)val, n },
	};
	int nold = notes_find(p, label, old);
	CK_RV rv;

	if (nold < 0)
		return nold;
	rv = p->f->C_CreateObject(p->session, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &h);
	if (rv != CKR_OK) {
		KMS_LOG(k, LOG_ERR, "kms: token \"%s\": the object \"%s\" cannot be written (CKR 0x%lx)", p->token,
			label, (unsigned long)rv);
		return rv_errno(rv) == -EBADMSG ? -EIO : rv_errno(rv);
	}
	for (int i = 0; i < nold; i++)
		(void)p->f->C_DestroyObject(p->session, old[i]);
	return 0;
}

int kms_p11_note_drop(struct kms *k, const char *label)
{
	struct kms_p11 *p = k->p11;
	CK_OBJECT_HANDLE h[NOTES_MAX];
	int n = notes_find(p, label, h), rc = 0;

	for (int i = 0; i < n; i++)
		if (p->f->C_DestroyObject(p->session, h[i]) != CKR_OK)
			rc = -EIO;
	return n < 0 ? n : rc;
}

const char *kms_p11_token(const struct kms *k)
{
	return k->p11 ? k->p11->token : "";
}

const char *kms_p11_key(const struct kms *k)
{
	return k->p11 ? k->p11->key_label : "";
}
