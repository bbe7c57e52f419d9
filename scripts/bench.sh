#!/usr/bin/env bash
# `make bench`: runs the benchmarks and writes their tables to docs/benchmarks.md.
# community.general (for the comparison with community.general.znode) comes from
# scripts/ext-collections.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export LANG=C.UTF-8 LC_ALL=C.UTF-8 ANSIBLE_CONFIG=$PWD/ansible.cfg PATH=$PWD/.venv/bin:$PATH

cg=$(scripts/ext-collections.sh)

out=docs/benchmarks.md
table=$(python -m bench.znode_tree --cg-collections "$cg")
runner_table=$(python -m bench.runner)
config_table=$(python -m bench.config)
farm_table=$(python -m bench.farm)
tree_table=$(python -m bench.tree_scale)
template_table=$(python -m bench.template)
{
    echo "# Benchmarks"
    echo
    echo "Made by \`make bench\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(python --version), ansible-core $(python -c 'import ansible.release as r; print(r.__version__)'), ZooKeeper from Debian's zookeeper package, all on loopback."
    echo
    echo "## znode_tree and the znode lookup (\`python -m bench.znode_tree\`)"
    echo
    echo "$table"
    echo
    echo "## zkherd run: lock handover and memory (\`python -m bench.runner\`)"
    echo
    echo "$runner_table"
    echo
    echo "## zkherd run: mirrored configuration and rolling restarts (\`python -m bench.config\`)"
    echo
    echo "$config_table"
    echo
    echo "## zkherd farm export (\`python -m bench.farm\`)"
    echo
    echo "$farm_table"
    echo
    echo "## Trees of 10,000 and 50,000 znodes (\`python -m bench.tree_scale\`)"
    echo
    echo "$tree_table"
    echo
    echo "## Templates (\`python -m bench.template\`)"
    echo
    echo "$template_table"
} >"$out"
cat "$out"
