#!/bin/sh
# Makes every Cargo target of the workspace an empty file, for the
# Dockerfile's dependency layer: with only the manifests copied in, Cargo
# must still find each library, binary and bench target the manifests name
# before it builds the dependencies. Run in the workspace root.
set -eu
mkdir -p src benches
echo 'fn main() {}' > src/main.rs
touch src/lib.rs
for manifest in Cargo.toml crates/*/Cargo.toml; do
    dir=$(dirname "$manifest")
    mkdir -p "$dir/src"
    [ "$dir" = . ] || touch "$dir/src/lib.rs"
    # Each [[bench]] table's name (harness = false: a main of its own).
    awk '/^\[\[bench\]\]/ { b = 1; next } /^\[/ { b = 0 } b && $1 == "name" { gsub(/"/, "", $3); print $3 }' "$manifest" |
        while read -r name; do
            mkdir -p "$dir/benches"
            echo 'fn main() {}' > "$dir/benches/$name.rs"
        done
done
