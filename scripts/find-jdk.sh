# Sourced by the launchers: sets MUON4J_JAVA_HOME to a JDK >= 25, or exits with a clear error.
# Order: $JAVA_HOME, then the JDKs under /usr/lib/jvm (newest first), then the java on PATH.

muon4j_java_major() {
  # Prints the feature version (e.g. 25) of the JDK at $1, or nothing.
  local home="$1" v
  [ -x "$home/bin/java" ] && [ -x "$home/bin/javac" ] || return 0
  if [ -f "$home/release" ]; then
    v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$home/release")
  fi
  if [ -z "$v" ]; then
    v=$("$home/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  fi
  echo "$v"
}

muon4j_find_jdk() {
  local want=25 cand major tried=""
  local candidates=()
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  for cand in $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do candidates+=("${cand%/}"); done
  if command -v java >/dev/null 2>&1; then
    cand=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
    candidates+=("$cand")
  fi
  for cand in "${candidates[@]}"; do
    major=$(muon4j_java_major "$cand")
    tried="$tried\n  $cand -> ${major:-not a JDK}"
    if [ -n "$major" ] && [ "$major" -ge "$want" ]; then
      MUON4J_JAVA_HOME="$cand"
      export MUON4J_JAVA_HOME
      return 0
    fi
  done
  printf 'muon4j: no JDK %s or newer found. Looked at:%b\nInstall one (for example Temurin 25) and set JAVA_HOME to it.\n' "$want" "$tried" >&2
  return 1
}
