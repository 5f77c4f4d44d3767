#!/usr/bin/env bash
# Builds a reference Apache RocketMQ Java client and its mqadmin tool from source trees,
# for the oracle tests in tests/interop/java_*.test.mjs. Nothing it writes belongs in
# this repository.
#
# Usage: scripts/rocketmq-ref.sh SRC_ROCKETMQ SRC_FASTJSON OUT_DIR
#   SRC_ROCKETMQ  an exported tree of apache/rocketmq at tag rocketmq-all-4.9.8
#   SRC_FASTJSON  an exported tree of alibaba/fastjson at tag 1.2.83
#   OUT_DIR       receives classes/, fastjson/, home/conf/ and the file `classpath`
#                 (one line, ':'-separated), which the tests read; point them at it with
#                 APOGEE_ROCKETMQ_REF=OUT_DIR.
#
# Needs a JDK (javac, 11 or newer) and Debian's jars for netty, commons-*, guava, slf4j,
# logback, snakeyaml, lz4 and zstd-jni; the missing packages are installed with apt-get
# when run as root (or with sudo). Compiles only the client side: the modules common,
# remoting, logging, client, srvutil, acl and tools. Left out: the OpenTracing hooks of
# the client (no Debian package; nothing else uses them); acl's YAML tag filter (needs
# SnakeYAML 2, Debian 12 has 1.33; mqadmin only reads the local tools ACL file with it). fastjson is compiled without
# its framework integrations (support/, Joda, Moneta, Springfox), which RocketMQ never
# loads; the few references to them are blanked in a scratch copy of its sources.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 SRC_ROCKETMQ SRC_FASTJSON OUT_DIR" >&2
    exit 2
fi
rmq=$(cd "$1" && pwd)
fj=$(cd "$2" && pwd)
mkdir -p "$3"
out=$(cd "$3" && pwd)

[ -f "$rmq/client/src/main/java/org/apache/rocketmq/client/producer/DefaultMQProducer.java" ] ||
    { echo "$rmq: not a RocketMQ source tree" >&2; exit 2; }
[ -f "$fj/src/main/java/com/alibaba/fastjson/JSON.java" ] ||
    { echo "$fj: not a fastjson source tree" >&2; exit 2; }

# Debian package -> jar it provides under /usr/share/java.
PKGS=(default-jdk-headless libnetty-java libcommons-lang3-java libcommons-cli-java
      libcommons-codec-java libcommons-validator-java libcommons-collections3-java libguava-java libslf4j-java
      liblogback-java libyaml-snake-java liblz4-java libzstd-jni-java)
JARS=(netty-buffer netty-codec netty-common netty-handler netty-resolver netty-transport
      netty-transport-native-epoll netty-transport-native-unix-common commons-lang3 commons-cli commons-codec commons-validator commons-collections3 guava
      slf4j-api logback-classic logback-core snakeyaml lz4-java zstd-jni)

missing=()
command -v javac >/dev/null || missing+=(default-jdk-headless)
for p in "${PKGS[@]:1}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "rocketmq-ref: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cp=""
for j in "${JARS[@]}"; do
    [ -f "/usr/share/java/$j.jar" ] || { echo "missing /usr/share/java/$j.jar" >&2; exit 1; }
    cp="$cp:/usr/share/java/$j.jar"
done
cp=${cp#:}

# -g as Maven compiles by default: fastjson reads constructor parameter names from the
# debug info to build classes without a default constructor (ProducerTableInfo).
JAVAC=(javac -g -nowarn -XDsuppressNotes -encoding UTF-8 -proc:none --release 11)
work="$out/work"
rm -rf "$work" "$out/classes" "$out/fastjson"
mkdir -p "$work" "$out/classes" "$out/fastjson"

# fastjson: a scratch copy with the framework integrations removed.
cp -r "$fj/src/main/java" "$work/fastjson-src"
rm -rf "$work/fastjson-src/com/alibaba/fastjson/support" \
    "$work/fastjson-src/com/alibaba/fastjson/serializer/JodaCodec.java"
sed -i -E -e '/^import com\.alibaba\.fastjson\.support\./d' \
    -e 's/\b(JodaCodec|MonetaCodec|SwaggerJsonSerializer)\.instance/null/' \
    "$work/fastjson-src/com/alibaba/fastjson/parser/ParserConfig.java" \
    "$work/fastjson-src/com/alibaba/fastjson/serializer/SerializeConfig.java"
find "$work/fastjson-src" -name '*.java' >"$work/fastjson.list"
echo "rocketmq-ref: compiling fastjson ($(wc -l <"$work/fastjson.list") files)"
"${JAVAC[@]}" -cp "$cp" -d "$out/fastjson" @"$work/fastjson.list"
if [ -d "$fj/src/main/resources" ]; then cp -r "$fj/src/main/resources/." "$out/fastjson/"; fi

# RocketMQ client-side modules, compiled together.
: >"$work/rocketmq.list"
for m in common remoting logging client srvutil acl tools; do
    find "$rmq/$m/src/main/java" -name '*.java' >>"$work/rocketmq.list"
    if [ -d "$rmq/$m/src/main/resources" ]; then
        cp -r "$rmq/$m/src/main/resources/." "$out/classes/"
    fi
done
# acl's AclUtils restricts YAML tags with an API of SnakeYAML 2 (Debian 12 has 1.33): a
# scratch copy of that one file builds its parser without the restriction.
aclutils=acl/src/main/java/org/apache/rocketmq/acl/common/AclUtils.java
sed -e '/snakeyaml\.inspector\.TagInspector;/d' -e '/TagInspector tagInspector/d' \
    -e '/setTagInspector/d' "$rmq/$aclutils" >"$work/AclUtils.java"
grep -v -e '/client/trace/hook/[A-Za-z]*OpenTracingHookImpl\.java$' -e "/$aclutils\$" \
    "$work/rocketmq.list" >"$work/rocketmq.files"
echo "$work/AclUtils.java" >>"$work/rocketmq.files"
echo "rocketmq-ref: compiling RocketMQ client and tools ($(wc -l <"$work/rocketmq.files") files)"
"${JAVAC[@]}" -cp "$out/fastjson:$cp" -d "$out/classes" @"$work/rocketmq.files"

# mqadmin reads $ROCKETMQ_HOME/conf/logback_tools.xml at start: log warnings to stderr.
mkdir -p "$out/home/conf"
cat >"$out/home/conf/logback_tools.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<configuration>
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{20} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR"/></root>
</configuration>
EOF

rm -rf "$work"
echo "$out/classes:$out/fastjson:$cp" >"$out/classpath"
echo "rocketmq-ref: done; APOGEE_ROCKETMQ_REF=$out"
