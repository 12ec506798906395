# shellcheck shell=bash
# deploy/lib/registry.sh: the example registry `make run` loads. Sourced by deploy/dev-stack.
#
# deploy/lib/registry/keys names the key pairs (the legal office, and a system, a reviewer
# and a publisher for each of three agencies) and their identities; deploy/lib/registry/
# MANIFEST lists the requests, in order, as "KEY OP FILE": the city legal office
# (嘉峪关市司法局) registers itself, its pool of reviewers and the three agencies; each
# agency's system puts its own lists (officers, matters, random-inspection items, AV
# matters, the review catalogue, discretion standards). The market regulation bureau's
# requests are deploy/examples/01..10, unchanged.
#
# Loading is idempotent: each request's rid is derived from its key, op and file content,
# and a write sent again with the same rid gets the stored reply and changes nothing
# (schemas/messages/rpc.md), so a second `make run` replays them all and duplicates none.
# A file changed after its first load is a new request: its put is refused
# version_conflict (reported, and the system runs on with the entry as first loaded);
# start from an empty SX_VAR, or put the entry with its current version by hand.

sx_registry_dir() { echo "$1/deploy/lib/registry"; }

# sx_registry_keys TOP KEYDIR SXCTL: makes each example key pair once under KEYDIR (never
# overwrites one) and prints the key file lines "<public key> <identity>".
sx_registry_keys() {
    local top=$1 keydir=$2 sxctl=$3 name id
    while read -r name id; do
        case "$name" in '' | '#'*) continue ;; esac
        [ -f "$keydir/$name.key" ] || "$sxctl" keygen --dir "$keydir" "$name" >/dev/null || return 1
        echo "$(cat "$keydir/$name.pub") $id"
    done <"$(sx_registry_dir "$top")/keys"
}

# sx_registry_load TOP KEYDIR SXCTL ENDPOINT SERVER_PUB LOG: sends every MANIFEST request to
# intake at ENDPOINT with the key KEYDIR/KEY.key, each reply appended to LOG. Prints one
# summary line; returns 0 when every reply was ok, 1 otherwise (each failure on stderr).
sx_registry_load() {
    local top=$1 keydir=$2 sxctl=$3 ep=$4 server=$5 log=$6
    local key op file rid out n=0 bad=0
    while read -r key op file; do
        case "$key" in '' | '#'*) continue ;; esac
        rid="dev-registry-$(sha256sum <"$top/$file" | cut -c1-24)-$key"
        rid=${rid:0:64}
        n=$((n + 1))
        if out=$("$sxctl" call "$ep" "$op" "$top/$file" --rid "$rid" --key "$keydir/$key.key" \
            --server-key "$server" --timeout 5000 --tries 3 2>>"$log"); then
            echo "$file $out" >>"$log"
        else
            bad=$((bad + 1))
            echo "$file $out" >>"$log"
            echo "dev-stack: example registry: $file ($op as $key) failed: ${out:-no reply}" >&2
        fi
    done <"$(sx_registry_dir "$top")/MANIFEST"
    if [ "$bad" -eq 0 ]; then
        echo "dev-stack: example registry loaded: $n requests ok (replies in ${log#"$top"/})"
    else
        echo "dev-stack: example registry: $bad of $n requests failed (replies in ${log#"$top"/})" >&2
        return 1
    fi
}
