// SPDX-License-Identifier: MIT
/*
 * check_config.c - the config module: defaults, round trips through
 * config_store/config_load, path resolution, and one test per kind of bad
 * file, each checking the errno and that the message names the file, the
 * line and the key.  Every test works in its own mkdtemp directory (Check
 * runs each test in a forked child).
 */
#include "config.h"
#include "tc.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#ifndef EVFS_EXAMPLE_INI
#error "EVFS_EXAMPLE_INI must name examples/evfs.ini"
#endif

static char dir[PATH_MAX];      /* this test's temporary store directory */
static char ini[PATH_MAX + 16]; /* dir/evfs.ini */
static char err[512];

static void setup(void)
{
	char tmpl[TC_PATH_MAX];
	tc_tmpdir(tmpl, sizeof tmpl, NULL, "check_config");
	ck_assert_ptr_nonnull(realpath(tmpl, dir));
	snprintf(ini, sizeof ini, "%s/%s", dir, CONFIG_FILE_NAME);
	err[0] = '\0';
}

static void teardown(void)
{
	ck_assert_int_eq(tc_rm_rf(dir), 0);
}

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

/* Load `text` as dir/evfs.ini; returns config_load's result. */
static int load_text(struct evfs_config *c, const char *text)
{
	put_file(ini, text);
	return config_load(c, ini, dir, err, sizeof err);
}

#define ck_assert_has(hay, needle) ck_assert_msg(strstr(hay, needle) != NULL, "'%s' not in '%s'", needle, hay)

/* The file is refused with -EINVAL and a message "<ini>:<line>: ..." that
 * names `what`. */
static void expect_bad(const char *text, unsigned line, const char *what)
{
	struct evfs_config c;
	char where[PATH_MAX + 64];

	ck_assert_int_eq(load_text(&c, text), -EINVAL);
	snprintf(where, sizeof where, "%s:%u: ", ini, line);
	ck_assert_msg(strncmp(err, where, strlen(where)) == 0, "'%s' does not start with '%s'", err, where);
	ck_assert_has(err, what);
	ck_assert_msg(strchr(err, '\n') == NULL, "message is not one line: %s", err);
}

/* ---- core --------------------------------------------------------------- */

START_TEST(test_defaults)
{
	struct evfs_config c;
	memset(&c, 0x5a, sizeof c);
	config_defaults(&c);
	ck_assert_str_eq(c.region, "region-1");
	ck_assert_str_eq(c.backup_dir, "backups");
	ck_assert_uint_eq(c.chunk_size, 4096);
	ck_assert_str_eq(c.kms_backend, "local");
	ck_assert_str_eq(c.key_source, "");
	ck_assert_str_eq(c.key_path, "");
	ck_assert_str_eq(c.security_admins, "root");
	ck_assert_str_eq(c.default_project, "default");
	ck_assert_int_eq(c.allow_other, 0);
	ck_assert_str_eq(c.log_file, "");
}
END_TEST

START_TEST(test_empty_file_gives_defaults)
{
	struct evfs_config c;
	char want[PATH_MAX + 16];
	ck_assert_int_eq(load_text(&c, "; nothing set\n\n[store]\n"), 0);
	ck_assert_str_eq(err, "");
	snprintf(want, sizeof want, "%s/backups", dir);
	ck_assert_str_eq(c.backup_dir, want);
	ck_assert_str_eq(c.region, "region-1");
	ck_assert_uint_eq(c.chunk_size, 4096);
}
END_TEST

START_TEST(test_round_trip)
{
	struct evfs_config in, out;
	struct stat st;

	config_defaults(&in);
	strcpy(in.region, "eu-west.2_b");
	strcpy(in.backup_dir, "/mnt/backup disk/evfs");
	in.chunk_size = 65536;
	strcpy(in.key_source, "passphrase");
	strcpy(in.key_path, "/root/.evfs/pass phrase;file");
	strcpy(in.security_admins, "root, alice bob");
	strcpy(in.default_project, "proj-7");
	in.allow_other = 1;
	strcpy(in.log_file, "/var/log/evfs.log");
	strcpy(in.catalog_backend, "postgresql");
	strcpy(in.pg_conninfo, "host=db1 port=5432 dbname=evfs user=evfs passfile=/etc/evfs/pgpass");
	strcpy(in.pg_schema, "evfs_0123abcd");
	strcpy(in.host_name, "hv-7.rack2");
	ck_assert_int_eq(config_store(&in, ini), 0);
	ck_assert_int_eq(stat(ini, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(config_load(&out, ini, dir, err, sizeof err), 0);
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(memcmp(&in, &out, sizeof in), 0);
}
END_TEST

START_TEST(test_store_writes_comments_no_secret)
{
	struct evfs_config c;
	char text[8192];
	config_defaults(&c);
	strcpy(c.key_source, "keyfile");
	strcpy(c.key_path, "/root/.evfs/root.key");
	ck_assert_int_eq(config_store(&c, ini), 0);
	FILE *f = fopen(ini, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(text, 1, sizeof text - 1, f);
	text[n] = '\0';
	fclose(f);
	ck_assert_has(text, "holds no secrets");
	ck_assert_has(text, "key_path = /root/.evfs/root.key\n");
	ck_assert_has(text, "backup_dir = backups\n");
	ck_assert_has(text, "allow_other = no\n");
	ck_assert_has(text, "log_file =\n");
	/* every key is explained by a comment line right above it */
	for (const char *p = text; (p = strchr(p, '=')) != NULL; p++) {
		const char *bol = p;
		while (bol > text && bol[-1] != '\n')
			bol--;
		if (*bol == ';')
			continue;
		ck_assert_msg(bol - text >= 2 && bol[-2] != '\n', "no comment above '%.20s'", bol);
		const char *prev = bol - 2;
		while (prev > text && prev[-1] != '\n')
			prev--;
		ck_assert_msg(*prev == ';', "no comment above '%.20s'", bol);
	}
}
END_TEST

START_TEST(test_store_refuses_existing_file)
{
	struct evfs_config c;
	struct stat st;
	mode_t old = umask(0);
	config_defaults(&c);
	ck_assert_int_eq(config_store(&c, ini), 0);
	ck_assert_int_eq(stat(ini, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(config_store(&c, ini), -EEXIST);
	umask(0277);
	unlink(ini);
	ck_assert_int_eq(config_store(&c, ini), 0);
	ck_assert_int_eq(stat(ini, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	umask(old);
}
END_TEST

START_TEST(test_store_refuses_bad_values)
{
	struct evfs_config c;
	const char *bad_regions[] = { "", "eu west", "a/b", "x;y" };
	for (size_t i = 0; i < sizeof bad_regions / sizeof bad_regions[0]; i++) {
		config_defaults(&c);
		strcpy(c.region, bad_regions[i]);
		ck_assert_int_eq(config_store(&c, ini), -EINVAL);
	}
	config_defaults(&c);
	strcpy(c.log_file, "/var/log/evfs ;x"); /* would read back as /var/log/evfs */
	ck_assert_int_eq(config_store(&c, ini), -EINVAL);
	config_defaults(&c);
	strcpy(c.key_path, "/a\nregion = evil");
	strcpy(c.key_source, "keyfile");
	ck_assert_int_eq(config_store(&c, ini), -EINVAL);
	config_defaults(&c);
	strcpy(c.key_source, "keyfile"); /* without key_path */
	ck_assert_int_eq(config_store(&c, ini), -EINVAL);
	config_defaults(&c);
	c.chunk_size = 5000;
	ck_assert_int_eq(config_store(&c, ini), -EINVAL);
	config_defaults(&c);
	memset(c.default_project, 'a', sizeof c.default_project); /* not terminated */
	ck_assert_int_eq(config_store(&c, ini), -EINVAL);
	ck_assert_int_eq(access(ini, F_OK), -1);
}
END_TEST

START_TEST(test_relative_paths_resolved)
{
	struct evfs_config c;
	char want[PATH_MAX + 64], other[PATH_MAX + 16], cwd[PATH_MAX];

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));

	ck_assert_int_eq(load_text(&c, "[store]\nbackup_dir = bk/daily\n[mount]\nlog_file = evfs.log\n"), 0);
	snprintf(want, sizeof want, "%s/bk/daily", dir);
	ck_assert_str_eq(c.backup_dir, want);
	snprintf(want, sizeof want, "%s/evfs.log", dir);
	ck_assert_str_eq(c.log_file, want);

	/* absolute paths are kept */
	ck_assert_int_eq(load_text(&c, "[store]\nbackup_dir = /mnt/other\n"), 0);
	ck_assert_str_eq(c.backup_dir, "/mnt/other");

	/* store_dir NULL: relative to the file's directory; a relative
	 * store_dir is taken from the current directory */
	snprintf(other, sizeof other, "%s/sub", dir);
	ck_assert_int_eq(mkdir(other, 0700), 0);
	put_file(ini, "[store]\nbackup_dir = bk\n");
	ck_assert_int_eq(config_load(&c, ini, NULL, err, sizeof err), 0);
	snprintf(want, sizeof want, "%s/bk", dir);
	ck_assert_str_eq(c.backup_dir, want);
	ck_assert_int_eq(chdir(dir), 0);
	ck_assert_int_eq(config_load(&c, CONFIG_FILE_NAME, "sub", err, sizeof err), 0);
	snprintf(want, sizeof want, "%s/sub/bk", dir);
	ck_assert_str_eq(c.backup_dir, want);
	ck_assert_int_eq(config_load(&c, CONFIG_FILE_NAME, NULL, err, sizeof err), 0);
	snprintf(want, sizeof want, "%s/bk", dir);
	ck_assert_str_eq(c.backup_dir, want);
	ck_assert_int_eq(chdir(cwd), 0); /* CK_FORK=no runs the next test here */
}
END_TEST

static int first_value(void *user, const char *section, const char *name, const char *value)
{
	(void)section;
	(void)name;
	snprintf(user, 64, "%s", value);
	return 1;
}

START_TEST(test_inline_comments_and_syntax)
{
	struct evfs_config c;
	char value[64];

	/* the installed inih strips " ; comment" itself (INI_ALLOW_INLINE_COMMENTS) */
	ck_assert_int_eq(ini_parse_string("[s]\nk = v1 ; a comment\n", first_value, value), 0);
	ck_assert_str_eq(value, "v1");
	ck_assert_int_eq(ini_parse_string("[s]\nk = v1;v2\n", first_value, value), 0);
	ck_assert_str_eq(value, "v1;v2");

	ck_assert_int_eq(load_text(&c, "\xEF\xBB\xBF; comment\n# another\n[store]\n"
				       "  region   =  eu-1   ; where we are\n"
				       "\tchunk_size = 8192\t;\tbytes\n"
				       "[kms]\nsecurity_admins = root alice ;admins\n"
				       "key_source: keyfile\nkey_path = /k;ey\n"
				       "[mount]\r\nallow_other = YES\r\nlog_file = ; none\n"),
			 0);
	ck_assert_str_eq(c.region, "eu-1");
	ck_assert_uint_eq(c.chunk_size, 8192);
	ck_assert_str_eq(c.security_admins, "root alice");
	ck_assert_str_eq(c.key_source, "keyfile");
	ck_assert_str_eq(c.key_path, "/k;ey");
	ck_assert_int_eq(c.allow_other, 1);
	ck_assert_str_eq(c.log_file, "");
}
END_TEST

START_TEST(test_booleans)
{
	static const char *const yes[] = { "yes", "Yes", "TRUE", "true", "on", "On", "1" };
	static const char *const no[] = { "no", "NO", "false", "False", "off", "OFF", "0" };
	struct evfs_config c;
	char text[128];
	for (size_t i = 0; i < 7; i++) {
		snprintf(text, sizeof text, "[mount]\nallow_other = %s\n", yes[i]);
		ck_assert_int_eq(load_text(&c, text), 0);
		ck_assert_int_eq(c.allow_other, 1);
		snprintf(text, sizeof text, "[mount]\nallow_other = %s\n", no[i]);
		ck_assert_int_eq(load_text(&c, text), 0);
		ck_assert_int_eq(c.allow_other, 0);
	}
}
END_TEST

START_TEST(test_chunk_sizes)
{
	struct evfs_config c;
	char text[128];
	for (uint32_t s = 4096; s <= 65536; s *= 2) {
		snprintf(text, sizeof text, "[store]\nchunk_size = %u\n", s);
		ck_assert_int_eq(load_text(&c, text), 0);
		ck_assert_uint_eq(c.chunk_size, s);
	}
}
END_TEST

START_TEST(test_long_lines)
{
	struct evfs_config c;
	static char text[16384], path[8192];

	/* a key_path far longer than inih's line buffer still loads */
	memset(path, 'p', 3000);
	path[0] = '/';
	path[3000] = '\0';
	snprintf(text, sizeof text, "; %0300d\n[kms]\nkey_source = keyfile\nkey_path = %s ; long\n", 0, path);
	ck_assert_int_eq(load_text(&c, text), 0);
	ck_assert_str_eq(c.key_path, path);

	/* and a path over the limit is named with the limit */
	memset(path, 'p', 5000);
	path[5000] = '\0';
	snprintf(text, sizeof text, "[kms]\nkey_source = keyfile\nkey_path = /%s\n", path);
	expect_bad(text, 3, "key_path");
	ck_assert_has(err, "longer than 4095 characters");

	snprintf(text, sizeof text, "[defaults]\nproject = %.100s\n", path);
	expect_bad(text, 2, "project");
	ck_assert_has(err, "1 to 63 characters");
}
END_TEST

START_TEST(test_is_admin)
{
	struct evfs_config c;
	config_defaults(&c);
	ck_assert_int_eq(config_is_admin(&c, "root"), 1);
	ck_assert_int_eq(config_is_admin(&c, "alice"), 0);
	strcpy(c.security_admins, "root, alice bob");
	ck_assert_int_eq(config_is_admin(&c, "root"), 1);
	ck_assert_int_eq(config_is_admin(&c, "alice"), 1);
	ck_assert_int_eq(config_is_admin(&c, "bob"), 1);
	ck_assert_int_eq(config_is_admin(&c, "ali"), 0);
	ck_assert_int_eq(config_is_admin(&c, "alice bob"), 0);
	ck_assert_int_eq(config_is_admin(&c, "roo"), 0);
	ck_assert_int_eq(config_is_admin(&c, "bobby"), 0);
	ck_assert_int_eq(config_is_admin(&c, ""), 0);
	ck_assert_int_eq(config_is_admin(&c, NULL), 0);
	ck_assert_int_eq(load_text(&c, "[kms]\nsecurity_admins = ,carol,,  dave ,\n"), 0);
	ck_assert_int_eq(config_is_admin(&c, "carol"), 1);
	ck_assert_int_eq(config_is_admin(&c, "dave"), 1);
	ck_assert_int_eq(config_is_admin(&c, "root"), 0);
}
END_TEST

START_TEST(test_example_file)
{
	struct evfs_config c;
	char text[8192], example[8192];

	ck_assert_int_eq(config_load(&c, EVFS_EXAMPLE_INI, dir, err, sizeof err), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(c.key_source, "keyfile");
	ck_assert_str_eq(c.key_path, "/root/.evfs/root.key");
	ck_assert_str_eq(c.region, "region-1");

	/* the example is exactly what evfsctl init writes for these values */
	config_defaults(&c);
	strcpy(c.key_source, "keyfile");
	strcpy(c.key_path, "/root/.evfs/root.key");
	ck_assert_int_eq(config_store(&c, ini), 0);
	FILE *f = fopen(ini, "r"), *g = fopen(EVFS_EXAMPLE_INI, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(g);
	size_t n = fread(text, 1, sizeof text - 1, f), m = fread(example, 1, sizeof example - 1, g);
	text[n] = example[m] = '\0';
	fclose(f);
	fclose(g);
	ck_assert_str_eq(example, text);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

/* PostgreSQL: the connection string names no password, is needed exactly
 * when something lives in PostgreSQL, and the schema is a plain name. */
START_TEST(test_postgresql_keys)
{
	struct evfs_config c;
	const char *kf = "[kms]\nkey_source = keyfile\nkey_path = /k\n";
	char text[512];

	snprintf(text, sizeof text, "%s[catalog]\nbackend = postgresql\nconninfo = host=db user=e password=x\n"
		 "schema = s\n", kf);
	expect_bad(text, 6, "holds a password (evfs.ini holds no secrets)");
	snprintf(text, sizeof text, "%s[catalog]\nbackend = postgresql\nschema = s1\n", kf);
	expect_bad(text, 5, "[catalog] conninfo is missing");
	snprintf(text, sizeof text, "%s[catalog]\nconninfo = host=db\n", kf);
	expect_bad(text, 5, "only meaningful with [catalog] backend = postgresql");
	snprintf(text, sizeof text, "%sstore = postgresql\n[catalog]\nconninfo = host=db\nschema = 9x\n", kf);
	expect_bad(text, 7, "not starting with a digit");
	snprintf(text, sizeof text, "%sstore = postgresql\n[catalog]\nconninfo = host=db passfile=/p\n"
		 "schema = evfs_1\n[host]\nname = hv1\n", kf);
	ck_assert_int_eq(load_text(&c, text), 0);
	ck_assert_str_eq(c.kms_store, "postgresql");
	ck_assert_str_eq(c.catalog_backend, "sqlite");
	ck_assert_str_eq(c.pg_schema, "evfs_1");
	ck_assert_str_eq(c.host_name, "hv1");
	ck_assert_int_eq(load_text(&c, kf), 0);
	ck_assert_msg(c.host_name[0] != '\0', "an empty [host] name becomes the hostname");
}
END_TEST

START_TEST(test_bad_chunk_size)
{
	char want[PATH_MAX + 128];
	expect_bad("[store]\nregion = r1\nchunk_size = 5000\n", 3, "chunk_size");
	snprintf(want, sizeof want, "%s:3: [store] chunk_size = 5000: not a power of two between 4096 and 65536; "
		 "use 4096 (the default)", ini);
	ck_assert_str_eq(err, want);
	expect_bad("[store]\nchunk_size = 2048\n", 2, "chunk_size = 2048");
	expect_bad("\n\n[store]\nchunk_size = 131072\n", 4, "chunk_size = 131072");
	expect_bad("[store]\nchunk_size = abc\n", 2, "chunk_size = abc: not a number");
	expect_bad("[store]\nchunk_size = -4096\n", 2, "chunk_size");
	expect_bad("[store]\nchunk_size = 4096k\n", 2, "chunk_size");
	expect_bad("[store]\nchunk_size = 18446744073709555712\n", 2, "chunk_size");
	expect_bad("[store]\nchunk_size =\n", 2, "chunk_size");
}
END_TEST

START_TEST(test_bad_backend)
{
	expect_bad("[kms]\nbackend = vault\n", 2, "backend = vault");
	ck_assert_has(err, "use local");
	expect_bad("[kms]\nkey_source = password\n", 2, "key_source");
	expect_bad("[kms]\nkey_source = keyfile\nkey_path = root.key\n", 3, "key_path");
	ck_assert_has(err, "absolute");
	expect_bad("[kms]\nsecurity_admins = root, al/ice\n", 2, "security_admins");
	expect_bad("[kms]\nsecurity_admins = ,\n", 2, "security_admins");
}
END_TEST

/* R34: backend = pkcs11 needs its keys; the backends' keys do not mix. */
START_TEST(test_pkcs11_backend)
{
	struct evfs_config c;
	const char *ok = "[kms]\nbackend = pkcs11\npkcs11_module = /usr/lib/softhsm/libsofthsm2.so\n"
			 "pkcs11_token = My Token 1\npkcs11_pin_file = /etc/evfs/pin\n";
	char text[1024];

	ck_assert_int_eq(load_text(&c, ok), 0);
	ck_assert_str_eq(c.kms_backend, "pkcs11");
	ck_assert_str_eq(c.pkcs11_module, "/usr/lib/softhsm/libsofthsm2.so");
	ck_assert_str_eq(c.pkcs11_token, "My Token 1");
	ck_assert_str_eq(c.pkcs11_pin_file, "/etc/evfs/pin");
	ck_assert_str_eq(c.pkcs11_key, "");
	snprintf(text, sizeof text, "%spkcs11_key = evfs-root-2\n", ok);
	ck_assert_int_eq(load_text(&c, text), 0);
	ck_assert_str_eq(c.pkcs11_key, "evfs-root-2");

	/* Written and loaded back; the local backend's keys are not written. */
	unlink(ini);
	ck_assert_int_eq(config_store(&c, ini), 0);
	{
		struct evfs_config back;
		FILE *f = fopen(ini, "r");
		char all[8192];
		size_t n;

		ck_assert_ptr_nonnull(f);
		n = fread(all, 1, sizeof all - 1, f);
		fclose(f);
		all[n] = '\0';
		ck_assert_msg(!strstr(all, "\nkey_source =") && !strstr(all, "\nkey_path ="), "%s", all);
		ck_assert_has(all, "pkcs11_token = My Token 1");
		ck_assert_int_eq(config_load(&back, ini, dir, err, sizeof err), 0);
		ck_assert_str_eq(back.pkcs11_key, "evfs-root-2");
		ck_assert_str_eq(back.pkcs11_token, "My Token 1");
	}

	expect_bad("[kms]\nbackend = pkcs11\n", 2, "[kms] backend = pkcs11: pkcs11_module is missing");
	ck_assert_has(err, "libsofthsm2.so");
	expect_bad("[kms]\nbackend = pkcs11\npkcs11_module = /m.so\npkcs11_pin_file = /p\n", 2,
		   "pkcs11_token is missing");
	expect_bad("[kms]\nbackend = pkcs11\npkcs11_module = /m.so\npkcs11_token = t\n", 2,
		   "pkcs11_pin_file is missing");
	ck_assert_has(err, "never the PIN itself");
	snprintf(text, sizeof text, "%skey_source = keyfile\nkey_path = /k\n", ok);
	expect_bad(text, 6, "[kms] key_source = keyfile: only for backend = local");
	expect_bad("[kms]\nbackend = local\npkcs11_token = t\n", 3, "pkcs11_token = t: only meaningful with "
		   "backend = pkcs11");
	expect_bad("[kms]\npkcs11_module = /m.so\n", 2, "pkcs11_module");
	expect_bad("[kms]\nbackend = pkcs11\npkcs11_module = m.so\n", 3, "not an absolute path");
	expect_bad("[kms]\npkcs11_token = 0123456789012345678901234567890123\n", 2, "longer than 32");
	expect_bad("[kms]\npkcs11_pin_file = pin\n", 2, "pkcs11_pin_file = pin: not an absolute path");
}
END_TEST

START_TEST(test_bad_names_and_bools)
{
	expect_bad("[store]\nregion = eu/west\n", 2, "[store] region = eu/west");
	ck_assert_has(err, "A-Z a-z 0-9 . _ -");
	expect_bad("[store]\nregion = eu west\n", 2, "region");
	expect_bad("[store]\nregion =\n", 2, "region");
	expect_bad("[defaults]\nproject = my project\n", 2, "project");
	expect_bad("[mount]\nallow_other = maybe\n", 2, "[mount] allow_other = maybe");
	ck_assert_has(err, "yes or no");
	expect_bad("[mount]\nallow_other =\n", 2, "allow_other");
	expect_bad("[store]\nbackup_dir =\n", 2, "backup_dir");
}
END_TEST

START_TEST(test_unknown_key)
{
	expect_bad("[store]\nregion = r1\n\nchunksize = 4096\n", 4, "chunksize");
	ck_assert_has(err, "unknown key");
	ck_assert_has(err, "region, backup_dir, chunk_size");
	expect_bad("[mount]\nRegion = r1\n", 2, "Region");
	expect_bad("region = r1\n", 1, "region");
	ck_assert_has(err, "outside any section");
}
END_TEST

START_TEST(test_unknown_section)
{
	expect_bad("[store]\nregion = r1\n[storage]\nbackup_dir = /b\n", 3, "[storage]");
	ck_assert_has(err, "unknown section");
	/* reported even when it has no keys */
	expect_bad("[kms]\n[kms.extra]\n", 2, "[kms.extra]");
	/* a later key error does not hide it; an earlier one wins */
	expect_bad("[x]\n[store]\nchunk_size = 3\n", 1, "[x]");
	expect_bad("[store]\nchunk_size = 3\n[x]\n", 2, "chunk_size");
}
END_TEST

START_TEST(test_duplicate_key)
{
	expect_bad("[store]\nchunk_size = 4096\n[kms]\n[store]\nchunk_size = 8192\n", 5, "chunk_size");
	ck_assert_has(err, "duplicate key (first set on line 2)");
}
END_TEST

START_TEST(test_syntax_error)
{
	expect_bad("[store]\nregion = r1\nthis is not a setting\n", 3, "not a \"key = value\" line");
	expect_bad("[store\nregion = r1\n", 1, "[section] header");
	expect_bad("[store]\nregion\n", 2, "key = value");
	/* the earlier of a syntax error and a bad value is reported */
	expect_bad("[store]\nchunk_size = 1\nbad line\n", 2, "chunk_size");
	expect_bad("[store]\nbad line\nchunk_size = 1\n", 2, "key = value");
	/* an indented line is a line of its own, never a continuation */
	expect_bad("[store]\nregion = r1\n    chunk_size = 1\n", 3, "chunk_size");
}
END_TEST

START_TEST(test_key_source_needs_key_path)
{
	expect_bad("[kms]\nkey_source = keyfile\n", 2, "key_path is missing");
	expect_bad("[kms]\n\nkey_path = /root/k\n", 3, "key_source is missing");
}
END_TEST

START_TEST(test_missing_file)
{
	struct evfs_config c;
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/none.ini", dir);
	ck_assert_int_eq(config_load(&c, path, dir, err, sizeof err), -ENOENT);
	ck_assert_has(err, path);
	ck_assert_has(err, "evfsctl init");
	/* no message buffer is fine too */
	ck_assert_int_eq(config_load(&c, path, dir, NULL, 0), -ENOENT);
	put_file(ini, "[store]\nchunk_size = 1\n");
	ck_assert_int_eq(config_load(&c, ini, dir, NULL, 0), -EINVAL);
	/* a small buffer gets a terminated prefix */
	char small[12];
	ck_assert_int_eq(config_load(&c, ini, dir, small, sizeof small), -EINVAL);
	ck_assert_uint_eq(strlen(small), sizeof small - 1);
	/* a store directory that does not exist */
	snprintf(path, sizeof path, "%s/nodir", dir);
	ck_assert_int_eq(config_load(&c, ini, path, err, sizeof err), -ENOENT);
}
END_TEST

START_TEST(test_unreadable_file)
{
	struct evfs_config c;
	if (geteuid() == 0)
		return; /* root reads anything */
	put_file(ini, "[store]\n");
	ck_assert_int_eq(chmod(ini, 0), 0);
	ck_assert_int_eq(config_load(&c, ini, dir, err, sizeof err), -EACCES);
	ck_assert_has(err, ini);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *core = tcase_create("core"), *errors = tcase_create("errors");

	tcase_add_checked_fixture(core, setup, teardown);
	tcase_add_test(core, test_defaults);
	tcase_add_test(core, test_empty_file_gives_defaults);
	tcase_add_test(core, test_round_trip);
	tcase_add_test(core, test_store_writes_comments_no_secret);
	tcase_add_test(core, test_store_refuses_existing_file);
	tcase_add_test(core, test_store_refuses_bad_values);
	tcase_add_test(core, test_relative_paths_resolved);
	tcase_add_test(core, test_inline_comments_and_syntax);
	tcase_add_test(core, test_booleans);
	tcase_add_test(core, test_chunk_sizes);
	tcase_add_test(core, test_long_lines);
	tcase_add_test(core, test_is_admin);
	tcase_add_test(core, test_example_file);
	suite_add_tcase(s, core);

	tcase_add_checked_fixture(errors, setup, teardown);
	tcase_add_test(errors, test_bad_chunk_size);
	tcase_add_test(errors, test_bad_backend);
	tcase_add_test(errors, test_pkcs11_backend);
	tcase_add_test(errors, test_bad_names_and_bools);
	tcase_add_test(errors, test_unknown_key);
	tcase_add_test(errors, test_unknown_section);
	tcase_add_test(errors, test_duplicate_key);
	tcase_add_test(errors, test_syntax_error);
	tcase_add_test(errors, test_key_source_needs_key_path);
	tcase_add_test(errors, test_missing_file);
	tcase_add_test(errors, test_postgresql_keys);
	tcase_add_test(errors, test_unreadable_file);
	suite_add_tcase(s, errors);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
