#!/usr/bin/env bash
# Packs into .gpu/ (ignored by git) what scripts/gpu/device-check.sh needs on a machine with an NVIDIA
# GPU but no JDK and no Maven: a JDK reduced with jlink, the command line's jars (without the CPU
# backends' native jars, which the GPU path does not load), muon4j-cuda's test classes and JUnit's
# console launcher. About 30 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
JDK=${JAVA_HOME:-}
if [[ -z "$JDK" || ! -x "$JDK/bin/jlink" ]]; then
  JDK=$(ls -d /usr/lib/jvm/*25* 2>/dev/null | head -1)
fi
[[ -x "$JDK/bin/jlink" ]] || { echo "pack.sh: no JDK 25 with jlink found (set JAVA_HOME)" >&2; exit 1; }
./build.sh -q -pl cli,cuda -am -DskipTests package
rm -rf .gpu
mkdir -p .gpu/lib .gpu/junit
"$JDK/bin/jlink" --add-modules java.base,java.logging,java.management,jdk.incubator.vector,jdk.unsupported,jdk.zipfs \
  --strip-debug --no-header-files --no-man-pages --compress=zip-9 --output .gpu/jdk 2>/dev/null
tar czf .gpu/jdk.tgz -C .gpu jdk
rm -rf .gpu/jdk
cp cli/target/muon4j-cli.jar .gpu/lib/
for jar in cli/target/lib/*.jar; do
  case "$(basename "$jar")" in
    openblas-*|dnnl-*) ;;  # CPU backends' natives: not needed on the GPU path
    *) cp "$jar" .gpu/lib/ ;;
  esac
done
tar czf .gpu/cuda-test-classes.tgz -C cuda/target test-classes
./mvnw -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.11.4 -DoutputDirectory=.gpu/junit
du -sh .gpu
