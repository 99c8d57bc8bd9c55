r"""Fetch Beam's Flink and Spark job servers with Maven into a cache folder.

  python scripts/beam_engines.py [--cache=.cache/beam-engines] [--beam_java=2.62.0] \
      [--flink=1.19] [--spark=3.5.9] [--only=flink,spark]

Writes CACHE/flink-job-server.jar and CACHE/spark-job-server.jar, the files the
converters take as `--flink_job_server_jar` / `--spark_job_server_jar` (and use
by default when present), so nothing is downloaded when a pipeline runs.

Why not Beam's ready-made `beam-runners-flink-<v>-job-server` jars: Maven
Central as this project's machines reach it serves none of them, nor the
runner modules at the installed Beam's version (2.77.0). It serves the runner
modules `beam-runners-flink-1.19` and `beam-runners-spark-3` at 2.62.0 with all
their dependencies, so this script resolves those (Spark itself is a
`provided` dependency of Beam's runner: added here) into CACHE/<engine>/lib/
and writes a small launcher jar whose manifest names the main class and the
library jars: `java -jar CACHE/flink-job-server.jar --help` works as with
Beam's own jar. A 2.62 job server runs the 2.77 Python SDK's pipelines (tested
by `make test-engines`); where the matching job-server jar can be had, pass it
to the converters instead.

Idempotent: an engine whose launcher jar exists for the same versions is
skipped (delete CACHE to fetch again).
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CACHE = os.path.join(ROOT, ".cache", "beam-engines")

MAIN_CLASS = {
    "flink": "org.apache.beam.runners.flink.FlinkJobServerDriver",
    "spark": "org.apache.beam.runners.spark.SparkJobServerDriver",
}
# Packages Flink 1.19 and Spark 3.5 open on Java 17 (their launch scripts pass
# these); the manifest's Add-Opens does the same for `java -jar`.
ADD_OPENS = {
    "flink": ["java.base/java.lang", "java.base/java.lang.reflect", "java.base/java.io", "java.base/java.net",
              "java.base/java.nio", "java.base/sun.nio.ch", "java.base/java.text", "java.base/java.time",
              "java.base/java.util", "java.base/java.util.concurrent", "java.base/java.util.concurrent.atomic",
              "java.base/java.util.concurrent.locks"],
    "spark": ["java.base/java.lang", "java.base/java.lang.invoke", "java.base/java.lang.reflect",
              "java.base/java.io", "java.base/java.net", "java.base/java.nio", "java.base/java.util",
              "java.base/java.util.concurrent", "java.base/java.util.concurrent.atomic", "java.base/sun.nio.ch",
              "java.base/sun.nio.cs", "java.base/sun.security.action", "java.base/sun.util.calendar"],
}


def dependencies(engine, beam_java, flink, spark):
    """(groupId, artifactId, version) the job server needs on its class path."""
    if engine == "flink":
        return [("org.apache.beam", f"beam-runners-flink-{flink}", beam_java)]
    return [("org.apache.beam", "beam-runners-spark-3", beam_java),
            ("org.apache.spark", "spark-core_2.12", spark),
            ("org.apache.spark", "spark-streaming_2.12", spark)]


def pom(engine, deps):
    rows = "\n".join(f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                     f"<version>{v}</version></dependency>" for g, a, v in deps)
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <!-- written by scripts/beam_engines.py -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>tfseaice.engines</groupId><artifactId>{engine}-job-server</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{rows}
  </dependencies>
</project>
"""


def manifest_line(text):
    """One manifest header, folded at 72 bytes as the JAR format requires."""
    b = text.encode()
    parts = [b[:72]] + [b" " + b[i:i + 71] for i in range(72, len(b), 71)]
    return b"\r\n".join(parts) + b"\r\n"


def write_launcher(path, main_class, lib_dir, add_opens, stamp):
    """A jar that holds only a manifest: Main-Class plus Class-Path to lib_dir/*.jar."""
    jars = sorted(f for f in os.listdir(lib_dir) if f.endswith(".jar"))
    rel = os.path.relpath(lib_dir, os.path.dirname(os.path.abspath(path)))
    body = (manifest_line("Manifest-Version: 1.0") + manifest_line(f"Main-Class: {main_class}")
            + manifest_line("Class-Path: " + " ".join(f"{rel}/{j}" for j in jars))
            + manifest_line("Add-Opens: " + " ".join(add_opens))
            + manifest_line(f"Implementation-Title: tfseaice {stamp}") + b"\r\n")
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", body)
    os.replace(tmp, path)
    return len(jars)


def fetch(engine, cache, beam_java, flink, spark, mvn="mvn"):
    deps = dependencies(engine, beam_java, flink, spark)
    stamp = " ".join(f"{a}:{v}" for _, a, v in deps)
    jar = os.path.join(cache, f"{engine}-job-server.jar")
    stamp_file = os.path.join(cache, engine, "versions.txt")
    if os.path.exists(jar) and os.path.exists(stamp_file) and open(stamp_file).read().strip() == stamp:
        print(f"{engine}: {jar} is there ({stamp})")
        return jar
    work = os.path.join(cache, engine)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with open(os.path.join(work, "pom.xml"), "w") as f:
        f.write(pom(engine, deps))
    t = time.time()
    cmd = [mvn, "-B", "-q", "-f", os.path.join(work, "pom.xml"), "dependency:copy-dependencies",
           f"-DoutputDirectory={os.path.join(work, 'lib')}", "-DincludeScope=runtime"]
    print(f"{engine}: resolving {stamp} with Maven", flush=True)
    if subprocess.run(cmd).returncode != 0:
        sys.exit(f"ERROR: {engine}: `{' '.join(cmd)}` failed (Maven Central unreachable, or a version not served?)")
    n = write_launcher(jar, MAIN_CLASS[engine], os.path.join(work, "lib"), ADD_OPENS[engine], stamp)
    with open(stamp_file, "w") as f:
        f.write(stamp + "\n")
    mb = sum(os.path.getsize(os.path.join(work, "lib", j)) for j in os.listdir(os.path.join(work, "lib"))) / 1e6
    print(f"{engine}: {jar} ({n} jars, {mb:.0f} MB) in {time.time() - t:.0f} s")
    return jar


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    ap.add_argument("--beam_java", default="2.62.0", help="version of Beam's Java runner modules")
    ap.add_argument("--flink", default="1.19", help="Flink minor version of beam-runners-flink-<v>")
    ap.add_argument("--spark", default="3.5.9", help="Spark 3 version (spark-core_2.12)")
    ap.add_argument("--only", default="flink,spark")
    args = ap.parse_args(argv)
    if shutil.which("java") is None or shutil.which("mvn") is None:
        sys.exit("ERROR: java and mvn are needed (Java 17 + Maven): apt-get install openjdk-17-jdk-headless maven")
    args.cache = os.path.abspath(args.cache)
    os.makedirs(args.cache, exist_ok=True)
    for engine in args.only.split(","):
        if engine not in MAIN_CLASS:
            sys.exit(f"ERROR: --only: unknown engine {engine!r} (flink, spark)")
        fetch(engine, args.cache, args.beam_java, args.flink, args.spark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
