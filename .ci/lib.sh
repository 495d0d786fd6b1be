# Shared steps of .ci/run and .ci/demo: install what is missing, build.
# Sourced, not run.

set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${MODELGATE_BUILD_DIR:-$repo_root/build}"

# Debian 12 packages the build, the tests and the demo need. nginx-light,
# haproxy, wrk and gnuplot-nox are for the benchmark harness (bench/run.sh)
# and its smoke test.
apt_packages=(
  build-essential cmake ninja-build ccache pkg-config curl
  libboost-dev libboost-program-options-dev
  nlohmann-json3-dev libyaml-cpp-dev libhiredis-dev libssl-dev
  # Routes shared between gateways: tests start a real redis-server.
  redis-server
  prometheus-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  nginx-light haproxy wrk gnuplot-nox
  # tests/docker: a private Podman engine (with runc, because crun rejects
  # hybrid cgroup layouts), an image built from busybox, and a TLS relay.
  podman runc busybox-static socat openssl
  # tests/dashboards: a real Prometheus and promtool check the dashboard and
  # the alert rules; dashboards/plot_metrics.py draws with gnuplot-nox.
  prometheus
)

install_dependencies() {
  local missing=()
  local package
  for package in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  # Node.js runs the end-to-end tests with the official openai SDK.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
  fi

  if ((${#missing[@]} > 0)); then
    echo "== installing: ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

install_node_modules() {
  if [[ ! -d "$repo_root/tests/e2e/node_modules/openai" ]]; then
    echo "== npm ci in tests/e2e"
    (cd "$repo_root/tests/e2e" && npm ci --no-audit --no-fund)
  fi
}

build() {
  echo "== building in $build_dir"
  cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$build_dir" --parallel "$(nproc)"
}
