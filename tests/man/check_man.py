#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check_man.py - fail when the man pages and the programs disagree (ctest "man").

    check_man.py SOURCE_DIR EVFSCTL EVFS

Checks, each printed as "ok - ..." or "not ok - ..." with what differs:

  evfsctl.8   every command and subcommand of `evfsctl --help` has a .TP entry
              under COMMANDS and every entry there is a command of the usage;
              every --option of the usage or of cli/*.c is named in the page,
              and every --option the page names exists; EXIT STATUS has 0, 1, 2
              and ENVIRONMENT has EVFS_STORE.
  help        `evfsctl help` is the usage; `evfsctl help GROUP` holds that
              group's usage lines; an unknown group exits 2 (no store needed).
  evfs.ini.5  the keys of fs/store/config.c's keys[] table, the keys of the
              file `evfsctl init` writes and the page's entries (.SS [section],
              .TP key) are the same sets; each entry states the default that
              init writes.
  evfs.8      every long option of `evfs --help`, every -o option it names and
              every option of fs/fuse/main.c's option table is in the page.
  rendering   groff -man -ww and `man --warnings -l` print no warning for any
              page.  Without groff this part is SKIPPED (loudly) and the test
              exits 77 if everything else passed.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SUB = re.compile(r"[a-z][a-z-]*")
LONGOPT = re.compile(r"--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
failures = 0


def report(ok, what, detail=""):
    global failures
    print(("ok - " if ok else "not ok - ") + what)
    if not ok:
        failures += 1
        for line in detail.strip().splitlines():
            print("    " + line)


def run(argv, env=None):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return p.returncode, p.stdout, p.stderr


def deroff(text):
    """Plain text of roff source: escapes and font changes gone, macro names dropped."""
    out = []
    for line in text.splitlines():
        if line.startswith(".\\\"") or line.startswith("'\\\""):
            continue
        if line.startswith("."):
            parts = line.split(None, 1)
            macro = parts[0]
            args = parts[1] if len(parts) > 1 else ""
            if macro in (".B", ".I", ".SH", ".SS"):
                line = args.replace('"', "")
            elif macro in (".BR", ".RB", ".IR", ".RI", ".BI", ".IB"):
                # alternating fonts: the arguments are written without blanks
                line = "".join(a.strip('"') for a in re.findall(r'"[^"]*"|\S+', args))
            else:
                line = ""
        line = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", line)
        line = re.sub(r"\\\((lq|rq|dq)", '"', line)
        line = line.replace("\\-", "-").replace("\\&", "").replace("\\c", "").replace("\\e", "\\")
        out.append(line)
    return "\n".join(out)


def sections(roff, name):
    """Lines of .SH name up to the next .SH."""
    lines, inside = [], False
    for line in roff.splitlines():
        if line.startswith(".SH"):
            inside = line[3:].strip().strip('"') == name
            continue
        if inside:
            lines.append(line)
    return lines


def tp_tags(lines):
    """(subsection, deroffed tag) of every .TP entry in lines."""
    tags, ss, i = [], None, 0
    while i < len(lines):
        if lines[i].startswith(".SS"):
            ss = lines[i][3:].strip().strip('"')
        if lines[i].startswith(".TP") and i + 1 < len(lines):
            tags.append((ss, deroff(lines[i + 1]).strip()))
            i += 1
        i += 1
    return tags


def split_top(part):
    """Split on '|' outside brackets."""
    segs, depth, cur = [], 0, ""
    for ch in part:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "|" and depth == 0:
            segs.append(cur)
            cur = ""
        else:
            cur += ch
    return segs + [cur]


def usage_commands(usage):
    """{(group, sub or None)} and {group: [usage lines]} from cli_usage's text."""
    cmds, lines = set(), {}
    for line in usage.splitlines():
        if not line.startswith("  "):
            continue
        for part in re.split(r"\s{3,}", line.strip()):
            if part.startswith("("):
                continue
            segs = split_top(part)
            words = segs[0].split()
            group = words[0]
            has_sub = len(words) > 1 and SUB.fullmatch(words[1])
            cmds.add((group, words[1] if has_sub else None))
            lines.setdefault(group, []).append(line)
            for seg in segs[1:]:
                w = seg.split()
                if not w or not SUB.fullmatch(w[0]):
                    continue
                if has_sub:
                    cmds.add((group, w[0]))
                else:
                    cmds.add((w[0], None))
                    lines.setdefault(w[0], []).append(line)
    return cmds, lines


def fmt(cmds):
    return "\n".join(sorted(" ".join(w for w in c if w) for c in cmds))


def check_evfsctl(src, evfsctl, page):
    env = {k: v for k, v in os.environ.items() if k != "EVFS_STORE"}
    rc, usage, err = run([evfsctl, "--help"], env)
    report(rc == 0 and usage.startswith("usage: evfsctl"), "evfsctl --help prints the usage", err)
    cmds, group_lines = usage_commands(usage)
    roff = open(page).read()
    tags = tp_tags(sections(roff, "COMMANDS"))
    documented = set()
    for _, tag in tags:
        words = tag.split()
        if words:
            documented.add((words[0], words[1] if len(words) > 1 and SUB.fullmatch(words[1]) else None))
    report(bool(cmds) and cmds <= documented, "evfsctl.8 has an entry for every command of evfsctl --help (%d)" %
           len(cmds), "missing from evfsctl.8 COMMANDS:\n" + fmt(cmds - documented))
    report(documented <= cmds, "every command entry of evfsctl.8 is a command of evfsctl --help",
           "documented but not in the usage:\n" + fmt(documented - cmds))

    # Options: those the usage shows and those the code compares arguments with.
    code_opts = set()
    for f in ("cli.c", "cli_keys.c", "cli_util.c", "evfsctl.c"):
        path = os.path.join(src, "cli", f)
        if os.path.exists(path):
            code_opts |= set(re.findall(r'"(--[a-z][a-z0-9-]*)"', open(path).read()))
    usage_opts = set(LONGOPT.findall(usage))
    text = deroff(roff)
    page_opts = set(LONGOPT.findall(text))
    missing = (code_opts | usage_opts) - page_opts
    report(not missing, "evfsctl.8 names every option of the usage and of cli/ (%d)" % len(code_opts | usage_opts),
           "not in evfsctl.8: " + " ".join(sorted(missing)))
    unknown = page_opts - code_opts - usage_opts
    report(not unknown, "every option evfsctl.8 names exists", "not accepted by evfsctl: " + " ".join(sorted(unknown)))
    status = " ".join(sections(roff, "EXIT STATUS"))
    report(all(re.search(r"\.B %d\b" % n, status) for n in (0, 1, 2)), "evfsctl.8 EXIT STATUS lists 0, 1 and 2")
    report("EVFS_STORE" in " ".join(sections(roff, "ENVIRONMENT")), "evfsctl.8 ENVIRONMENT has EVFS_STORE")

    # evfsctl help [COMMAND]: needs no store.
    rc, out, err = run([evfsctl, "help"], env)
    report(rc == 0 and out == usage, "evfsctl help prints the usage, without a store", err)
    bad = []
    for group, lines in sorted(group_lines.items()):
        rc, out, err = run([evfsctl, "help", group], env)
        if rc != 0 or any(line not in out.splitlines() for line in lines) or len(out.splitlines()) <= len(lines) + 1:
            bad.append("help %s: exit %d\n%s%s" % (group, rc, out, err))
    report(not bad, "evfsctl help GROUP prints the group's usage lines and more, for all %d groups" %
           len(group_lines), "\n".join(bad))
    rc, out, err = run([evfsctl, "help", "no-such-command"], env)
    report(rc == 2 and not out and "no-such-command" in err, "evfsctl help no-such-command exits 2", out + err)


def check_ini(src, evfsctl, page):
    code = open(os.path.join(src, "fs", "store", "config.c")).read()
    table = set(re.findall(r'\[K_\w+\]\s*=\s*\{\s*"(\w+)",\s*"(\w+)"', code))
    report(len(table) >= 10, "config.c's keys[] table read (%d keys)" % len(table))
    written, values = set(), {}
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        rc, out, err = run([evfsctl, "--store", store, "init", "--keyfile", os.path.join(tmp, "root.key")])
        report(rc == 0, "evfsctl init makes a store", out + err)
        section = None
        if rc == 0:
            for line in open(os.path.join(store, "evfs.ini")):
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]")
                elif line and not line.startswith(";") and "=" in line:
                    k, v = (x.strip() for x in line.split("=", 1))
                    written.add((section, k))
                    values[(section, k)] = v
    # A key file store's evfs.ini leaves out the PKCS#11 backend's keys
    # (config_store writes only the chosen backend's).
    p11 = {k for k in table if (k[0] == "kms" and k[1].startswith("pkcs11_")) or k[0] == "rados" or
           k in (("catalog", "conninfo"), ("catalog", "schema"))}
    report(written == table - p11, "evfsctl init writes exactly the keys of config.c (those of its backend)",
           "only in config.c: %s\nonly in evfs.ini: %s" % (sorted(table - p11 - written), sorted(written - table)))
    roff = open(page).read()
    entries = {}
    keys_sec = sections(roff, "KEYS")
    for ss, tag in tp_tags(keys_sec):
        if ss and tag:
            entries[(ss.strip("[]"), tag.split()[0])] = None
    # the text of each entry, to check its default
    cur, ss = None, None
    for line in keys_sec:
        if line.startswith(".SS"):
            ss, cur = line[3:].strip().strip('"[]'), None
        elif line.startswith(".TP"):
            cur = "next"
        elif cur == "next":
            cur = (ss, deroff(line).split()[0]) if deroff(line).split() else None
            entries[cur] = ""
        elif cur:
            entries[cur] += deroff(line) + "\n"
    documented = set(entries)
    report(documented == table, "evfs.ini.5 documents exactly the keys of config.c (%d)" % len(table),
           "missing from evfs.ini.5: %s\nnot a key of config.c: %s" % (sorted(table - documented),
                                                                       sorted(documented - table)))
    wrong = []
    for key, v in sorted(values.items()):
        if v and key[1] not in ("key_source", "key_path", "security_admins") and key in entries:
            if not re.search(r"Default:\s+" + re.escape(v) + r"\b", entries[key]):
                wrong.append("[%s] %s: init writes '%s'; the page does not say 'Default: %s'" % (key + (v, v)))
    report(not wrong, "evfs.ini.5 states the default evfsctl init writes for each key", "\n".join(wrong))


def check_evfs(src, evfs, page):
    rc, out, err = run([evfs, "--help"])
    report(rc == 0 and "usage: evfs" in out, "evfs --help prints the usage", err)
    text = deroff(open(page).read())
    words = set(re.findall(r"[A-Za-z0-9_.=-]+", text))
    wanted = set(LONGOPT.findall(out))
    wanted |= set(re.findall(r"(?<![\w-])(-[a-zA-Z])\b", out))
    wanted |= set(re.findall(r"-o\s+([a-z_]+)", out))
    wanted |= set(re.findall(r"\b([a-z_]+)=", out))
    m = re.search(r"Options for mount\(8\)\s*\(([^)]*)\)", out)
    if m:
        wanted |= {w for w in re.split(r"[\s,]+", m.group(1)) if re.fullmatch(r"[a-z_]+", w)}
    spec = open(os.path.join(src, "fs", "fuse", "main.c")).read()
    wanted |= {o.rstrip("=") for o in re.findall(r'FUSE_OPT_KEY\("([^"]+)"', spec)}
    missing = sorted(w for w in wanted if w not in words and w + "=" not in text)
    report(not missing, "evfs.8 names every option of evfs --help and main.c's option table (%d)" % len(wanted),
           "not in evfs.8: " + " ".join(missing))


def check_render(pages):
    groff = shutil.which("groff")
    if not groff:
        print("#" * 72)
        print("# SKIPPED: rendering of the man pages not checked: groff is not installed")
        print("# (CI must install groff-base and man-db)")
        print("#" * 72)
        return False
    for page in pages:
        p = subprocess.run([groff, "-man", "-ww", "-z", page], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        report(p.returncode == 0 and not p.stderr, "groff -man -ww -z %s: no warning" % os.path.basename(page),
               p.stderr)
    man = shutil.which("man")
    if man:
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
        env.pop("MANPAGER", None)
        env.pop("PAGER", None)
        for page in pages:
            p = subprocess.run([man, "--warnings", "-l", page], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
            report(p.returncode == 0 and not p.stderr and "NAME" in p.stdout,
                   "MANWIDTH=80 man --warnings -l %s: no warning" % os.path.basename(page), p.stderr)
    else:
        print("# note: man (man-db) is not installed; only groff checked the pages")
    return True


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: check_man.py SOURCE_DIR EVFSCTL EVFS")
    src, evfsctl, evfs = sys.argv[1:]
    man = os.path.join(src, "docs", "man")
    pages = [os.path.join(man, p) for p in ("evfsctl.8", "evfs.8", "evfs.ini.5")]
    for p in pages:
        report(os.path.exists(p), "%s exists" % os.path.relpath(p, src))
    if failures:
        return 1
    check_evfsctl(src, evfsctl, pages[0])
    check_evfs(src, evfs, pages[1])
    check_ini(src, evfsctl, pages[2])
    rendered = check_render(pages)
    if failures:
        print("FAILED: %d check(s); fix the man page (docs/man/) or the program so that they agree" % failures)
        return 1
    return 0 if rendered else 77


if __name__ == "__main__":
    sys.exit(main())
