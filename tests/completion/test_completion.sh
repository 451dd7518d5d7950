#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_completion.sh - ctest "completion": the bash completion of evfsctl
# (contrib/bash-completion/evfsctl) completes groups, subcommands, options
# and the names of a real store's objects.
#
#     test_completion.sh SOURCE_DIR EVFSCTL
#
# Sources the script, sets COMP_WORDS/COMP_CWORD as bash would for a TAB
# after the given words, calls _evfsctl and compares COMPREPLY (sorted).
# The store is made in a temporary directory with evfsctl init --keyfile;
# no mount is needed.
set -u
SRC=${1:?usage: test_completion.sh SOURCE_DIR EVFSCTL}
EVFSCTL=${2:?usage: test_completion.sh SOURCE_DIR EVFSCTL}
FAILED=0
N=0

# shellcheck source=../../contrib/bash-completion/evfsctl
source "$SRC/contrib/bash-completion/evfsctl" || { echo "not ok - cannot source the completion script"; exit 1; }
[[ $(complete -p evfsctl 2>/dev/null) == *"-F _evfsctl"* ]] || { echo "not ok - complete -F _evfsctl evfsctl not registered"; FAILED=1; }

# check "what" "expected words" WORD... (the last WORD is the one being completed)
check()
{
    local what=$1 want=$2
    shift 2
    COMP_WORDS=("$@")
    COMP_CWORD=$(( $# - 1 ))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _evfsctl "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    local got
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//')
    want=$(printf '%s\n' $want | sort | tr '\n' ' ' | sed 's/ $//')
    N=$(( N + 1 ))
    if [[ $got == "$want" ]]; then
        echo "ok $N - $what"
    else
        echo "not ok $N - $what"
        echo "    words:    $*|"
        echo "    expected: $want"
        echo "    got:      $got"
        FAILED=1
    fi
}

GROUPS_ALL="init kms key volume snapshot backup image attach detach fsck status upgrade help"
unset EVFS_STORE

check "evfsctl vol<TAB>: volume" "volume" "$EVFSCTL" vol
check "evfsctl <TAB>: every command group" "$GROUPS_ALL" "$EVFSCTL" ""
check "evfsctl --<TAB>: the global options" "--store --project --json --help" "$EVFSCTL" --
check "evfsctl --json <TAB>: groups after a global option" "$GROUPS_ALL" "$EVFSCTL" --json ""
check "evfsctl volume <TAB>: volume's subcommands" "create list show delete extend rollback rekey" "$EVFSCTL" volume ""
check "evfsctl key s<TAB>" "show schedule-deletion share" "$EVFSCTL" key s
check "evfsctl kms <TAB>" "grant revoke audit" "$EVFSCTL" kms ""
check "evfsctl image <TAB>" "create copy list show delete export replicate" "$EVFSCTL" image ""
check "evfsctl volume create x --<TAB>: volume create's options" \
    "--size --encrypt --key --no-encrypt --from-snapshot --from-backup --from-image --type" \
    "$EVFSCTL" volume create x --
check "evfsctl volume create x --size 1G --encrypt --<TAB>: options given are not offered again" \
    "--key --no-encrypt --from-snapshot --from-backup --from-image --type" \
    "$EVFSCTL" volume create x --size 1G --encrypt --
check "evfsctl volume create x --from-image i --type <TAB>" "system data" \
    "$EVFSCTL" volume create x --from-image i --type ""
check "evfsctl fsck --<TAB>" "--all --repair --quarantine" "$EVFSCTL" fsck --
check "evfsctl detach v --<TAB>" "--force" "$EVFSCTL" detach v --
check "evfsctl init --<TAB>" "--region --chunk-size --security-admins --keyfile --passphrase-file" "$EVFSCTL" init --
check "evfsctl kms audit --<TAB>" "--key --verify" "$EVFSCTL" kms audit --
check "evfsctl help <TAB>: the groups" "$GROUPS_ALL" "$EVFSCTL" help ""
check "evfsctl volume show <TAB> without a store: nothing" "" "$EVFSCTL" volume show ""

# The groups and subcommands are those of evfsctl --help (parsed as the man
# test parses it).
USAGE_CMDS=$(python3 -B -c '
import sys
sys.path.insert(0, sys.argv[1] + "/tests/man")
import check_man, subprocess
cmds, _ = check_man.usage_commands(subprocess.run([sys.argv[2], "--help"], stdout=subprocess.PIPE,
                                                  text=True).stdout)
for g in sorted({g for g, _ in cmds}):
    print(g, " ".join(sorted(s for h, s in cmds if h == g and s)))' "$SRC" "$EVFSCTL")
check "evfsctl <TAB> offers exactly the groups of evfsctl --help" "$(cut -d' ' -f1 <<<"$USAGE_CMDS")" "$EVFSCTL" ""
while read -r g subs; do
    [[ -n $subs ]] && check "evfsctl $g <TAB> offers exactly the subcommands of evfsctl --help" "$subs" "$EVFSCTL" "$g" ""
done <<<"$USAGE_CMDS"

# Object names from a real store (no mount: evfsctl opens it itself).
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ST=$TMP/store
ctl() { "$EVFSCTL" --store "$ST" "$@" >/dev/null 2>"$TMP/err" || { echo "setup failed: evfsctl $*"; cat "$TMP/err"; exit 1; }; }
ctl init --keyfile "$TMP/root.key"
ctl kms grant
ctl key create data-key
ctl volume create v1 --size 1M
ctl volume create v2 --size 1M --encrypt --key data-key
ctl snapshot create v1 s1
ctl backup create v1 b1
ctl image create v1 i1
ctl --project p2 volume create w1 --size 1M
touch "$TMP/export.img"

check "evfsctl --store ST volume show <TAB>: the volumes" "v1 v2" "$EVFSCTL" --store "$ST" volume show ""
check "evfsctl --store ST attach v<TAB>" "v1 v2" "$EVFSCTL" --store "$ST" attach v
check "evfsctl --store ST snapshot delete <TAB>" "s1" "$EVFSCTL" --store "$ST" snapshot delete ""
check "evfsctl --store ST backup verify <TAB>" "b1" "$EVFSCTL" --store "$ST" backup verify ""
check "evfsctl --store ST image export <TAB>" "i1" "$EVFSCTL" --store "$ST" image export ""
check "evfsctl --store ST image export i1 FILE<TAB>: files" "$TMP/export.img" \
    "$EVFSCTL" --store "$ST" image export i1 "$TMP/exp"
check "evfsctl --store ST key disable <TAB>: key aliases" "data-key evs/default" \
    "$EVFSCTL" --store "$ST" key disable ""
check "evfsctl --store ST volume create n --size 1M --encrypt --key <TAB>" "data-key evs/default" \
    "$EVFSCTL" --store "$ST" volume create n --size 1M --encrypt --key ""
check "evfsctl --store ST volume create n --from-snapshot <TAB>" "s1" \
    "$EVFSCTL" --store "$ST" volume create n --from-snapshot ""
check "evfsctl --store ST volume rollback v1 --snapshot <TAB>" "s1" \
    "$EVFSCTL" --store "$ST" volume rollback v1 --snapshot ""
check "evfsctl --store ST snapshot create <TAB>: volumes; then NAME: nothing" "v1 v2" \
    "$EVFSCTL" --store "$ST" snapshot create ""
check "evfsctl --store ST snapshot create v1 <TAB>: a new name, nothing offered" "" \
    "$EVFSCTL" --store "$ST" snapshot create v1 ""
check "evfsctl --store ST fsck <TAB>: every object" "v1 v2 s1 b1 i1" "$EVFSCTL" --store "$ST" fsck ""
check "evfsctl --store ST --project p2 volume delete <TAB>: that project's volumes" "w1" \
    "$EVFSCTL" --store "$ST" --project p2 volume delete ""
EVFS_STORE=$ST check "EVFS_STORE=ST evfsctl detach <TAB>" "v1 v2" "$EVFSCTL" detach ""
export EVFS_STORE=$ST
check "EVFS_STORE=ST evfsctl backup show <TAB>" "b1" "$EVFSCTL" backup show ""
unset EVFS_STORE

# Without python3 the same names come through sed.
mkdir -p "$TMP/bin"
for t in sed sort tr mktemp; do ln -s "$(command -v $t)" "$TMP/bin/$t"; done
PATH=$TMP/bin check "without python3 (sed): evfsctl --store ST volume show <TAB>" "v1 v2" \
    "$EVFSCTL" --store "$ST" volume show ""
PATH=$TMP/bin check "without python3 (sed): key aliases" "data-key evs/default" \
    "$EVFSCTL" --store "$ST" key show ""

if (( FAILED )); then
    echo "FAILED: the completion (contrib/bash-completion/evfsctl) does not complete as expected"
    exit 1
fi
echo "all $N completion checks passed"
