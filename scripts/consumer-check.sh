#!/usr/bin/env bash
# Installs muon4j into the local Maven repository with the Maven Wrapper, then builds and runs
# examples/consumer, a separate Maven project that depends on dev.muon4j:muon4j-core by its
# coordinates, on a plain `java` (no --add-modules): what a Java shop adopting muon4j does.
# Usage: scripts/consumer-check.sh     (exit 0 when the consumer's Muon steps lowered its loss)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/find-jdk.sh
muon4j_find_jdk
export JAVA_HOME="$MUON4J_JAVA_HOME"
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
VERSION="$(sed -n 's:^  <version>\(.*\)</version>$:\1:p' pom.xml | head -1)"
[ -n "$VERSION" ] || { echo "consumer-check: cannot read the version from pom.xml" >&2; exit 1; }
echo "consumer-check: ./mvnw install of muon4j $VERSION (the parent and core)"
./mvnw -q -B install -pl core -am -DskipTests
echo "consumer-check: building examples/consumer against dev.muon4j:muon4j-core:$VERSION"
./mvnw -q -B -f examples/consumer/pom.xml -Dmuon4j.version="$VERSION" package dependency:copy-dependencies
"$JAVA_HOME/bin/java" -cp "examples/consumer/target/classes:examples/consumer/target/dependency/*" ConsumerMain
