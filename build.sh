#!/usr/bin/env bash
# Runs Maven with a JDK >= 25, found on its own. Arguments go to Maven; the default builds and
# packages everything without tests. Examples: ./build.sh test    ./build.sh -pl core test
# Maven itself comes from the Maven Wrapper (./mvnw), which downloads the version pinned in
# .mvn/wrapper/maven-wrapper.properties from Maven Central on first use, checks its SHA-256 and
# keeps it in ~/.m2/wrapper: a JDK 25 is all a machine needs.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/find-jdk.sh
muon4j_find_jdk
export JAVA_HOME="$MUON4J_JAVA_HOME"
# Maven's own Guava warns about sun.misc.Unsafe on new JDKs; that noise is not ours.
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
if [ $# -eq 0 ]; then set -- -q -DskipTests package; fi
exec ./mvnw -B "$@"
