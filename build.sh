#!/usr/bin/env bash
# Runs Maven with a JDK >= 25, found on its own. Arguments go to Maven; the default builds and
# packages everything without tests. Examples: ./build.sh test    ./build.sh -pl core test
set -euo pipefail
cd "$(dirname "$0")"
. scripts/find-jdk.sh
muon4j_find_jdk
if ! command -v mvn >/dev/null 2>&1; then
  echo "muon4j: Maven (mvn) is not installed; on Debian: apt-get install -y maven" >&2
  exit 1
fi
export JAVA_HOME="$MUON4J_JAVA_HOME"
# Maven's own Guava warns about sun.misc.Unsafe on new JDKs; that noise is not ours.
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
if [ $# -eq 0 ]; then set -- -q -DskipTests package; fi
exec mvn -B "$@"
