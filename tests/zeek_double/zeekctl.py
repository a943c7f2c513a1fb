"""Test double of zeekctl for the Molecule hosts, where Zeek cannot be installed.

Follows zeekctl's documented command behaviour for what the role relies on:
- check: reads zeekctl.cfg and node.cfg as zeekctl does (INI sections, type=
  logger/manager/proxy/worker, exactly one manager) and parses every script of the site
  policy with Zeek's own script parser (zeek-format from the zeekscript package, standing
  in for zeek's parse-only run). Prints "<node> scripts failed." plus the parser's message
  and exits 1 on an error; "<node> scripts are ok." for each node otherwise.
- install: copies the policy to SpoolDir/installed-scripts-do-not-touch and writes
  zeekctl-config.sh into share/zeekctl/scripts, as zeekctl does.
- deploy: check, install, stop, start. start: one process per node (the stub `zeek`, a
  worker given its interface with -i), pinned with taskset like zeekctl, the logger (else
  the manager) writing into its spool directory with <LogDir>/current pointing there, the
  workers logging the DNS queries they capture into the same directory (worker.py); stop:
  ends them. status: one line per node.
- cron: records that it ran (SpoolDir/cron.log).
"""

import configparser
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

# Installed as <prefix>/lib/zeekctl-double/zeekctl.py, run by <prefix>/bin/zeekctl.
PREFIX = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
ETC = os.path.join(PREFIX, "etc")
SITE = os.path.join(PREFIX, "share", "zeek", "site")
FORMATTER = "/opt/zeek-stub/venv/bin/zeek-format"


def settings():
    cfg = {"SpoolDir": os.path.join(PREFIX, "spool"), "LogDir": os.path.join(PREFIX, "logs")}
    with open(os.path.join(ETC, "zeekctl.cfg")) as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = (part.strip() for part in line.split("=", 1))
                cfg[key] = value
    return cfg


def nodes():
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str
    with open(os.path.join(ETC, "node.cfg")) as handle:
        parser.read_file(handle)
    result = []
    for name in parser.sections():
        node = dict(parser[name])
        if node.get("type") not in ("logger", "manager", "proxy", "worker"):
            raise SystemExit(f"error: node.cfg: [{name}]: unknown or missing type")
        if node["type"] == "worker":
            if "interface" not in node:
                raise SystemExit(f"error: node.cfg: [{name}]: worker without interface")
            if node.get("lb_method") == "af_packet" and node["interface"].startswith("af_packet::"):
                raise SystemExit(f"error: node.cfg: [{name}]: lb_method=af_packet with an af_packet:: interface")
            procs = int(node.get("lb_procs", "1"))
            pins = [p for p in node.get("pin_cpus", "").split(",") if p]
            if pins and len(pins) < procs:
                print(f"warning: node.cfg: [{name}]: fewer pin_cpus than lb_procs")
            for i in range(procs):
                worker = dict(node, name=f"{name}-{i + 1}", cpu=pins[i] if i < len(pins) else None)
                result.append(worker)
        else:
            result.append(dict(node, name=name, cpu=None))
    if sum(1 for n in result if n["type"] == "manager") != 1:
        raise SystemExit("error: node.cfg: exactly one manager is required")
    return result


def check():
    cfg = settings()
    scripts = [os.path.join(SITE, cfg.get("SitePolicyScripts", "local.zeek"))]
    scripts += sorted(glob.glob(os.path.join(SITE, "**", "*.zeek"), recursive=True))
    failed = False
    for node in nodes():
        if node["type"] == "worker" and not node["name"].endswith("-1"):
            continue
        errors = []
        for script in dict.fromkeys(scripts):
            proc = subprocess.run([FORMATTER, script], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                errors.append(f"error in {script}: {proc.stderr.strip()}")
        if errors:
            failed = True
            print(f"{node['name']} scripts failed.")
            print("\n".join(errors))
        else:
            print(f"{node['name']} scripts are ok.")
    return 1 if failed else 0


def install():
    cfg = settings()
    target = os.path.join(cfg["SpoolDir"], "installed-scripts-do-not-touch")
    if os.path.isdir(target):
        shutil.rmtree(target)
    shutil.copytree(SITE, os.path.join(target, "site"))
    for name in ("node.cfg", "networks.cfg", "zeekctl.cfg"):
        shutil.copy(os.path.join(ETC, name), target)
    with open(os.path.join(PREFIX, "share", "zeekctl", "scripts", "zeekctl-config.sh"), "w") as handle:
        handle.write("".join(f'{k.lower()}="{v}"\n' for k, v in sorted(cfg.items())))
    print("installing site policies ...\ngenerating cluster-layout.zeek ...\ndone.")
    return 0


def pidfile(cfg, node):
    return os.path.join(cfg["SpoolDir"], node["name"] + ".pid")


def running(cfg, node):
    try:
        with open(pidfile(cfg, node)) as handle:
            pid = int(handle.read())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def log_node(cluster):
    """The node that writes the logs: the logger, else the manager."""
    loggers = [n for n in cluster if n["type"] == "logger"]
    return loggers[0] if loggers else next(n for n in cluster if n["type"] == "manager")


def start():
    cfg = settings()
    cluster = nodes()
    # As zeekctl: the log node writes into its spool directory, <LogDir>/current points there.
    writer = log_node(cluster)
    live = os.path.join(cfg["SpoolDir"], writer["name"])
    os.makedirs(live, exist_ok=True)
    current = os.path.join(cfg["LogDir"], "current")
    if os.path.islink(current) and os.readlink(current) != live:
        os.unlink(current)
    if not os.path.lexists(current):
        os.symlink(live, current)
    for node in cluster:
        if running(cfg, node):
            continue
        argv = [os.path.join(PREFIX, "bin", "zeek"), node["name"]]
        if node["type"] == "worker":
            argv += ["-i", node["interface"]]
        if node["cpu"] is not None:
            argv = ["taskset", "-c", node["cpu"], *argv]
        env = dict(os.environ, ZEEK_DOUBLE_LOG_DIR=live) if node is writer else None
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, cwd=cfg["SpoolDir"], env=env)
        with open(pidfile(cfg, node), "w") as handle:
            handle.write(str(proc.pid))
        print(f"starting {node['name']} ...")
    return 0


def stop():
    cfg = settings()
    for node in nodes():
        pid = running(cfg, node)
        if pid:
            os.kill(pid, signal.SIGTERM)
            print(f"stopping {node['name']} ...")
        for _attempt in range(50):
            if not running(cfg, node):
                break
            time.sleep(0.1)
        if os.path.exists(pidfile(cfg, node)):
            os.unlink(pidfile(cfg, node))
    return 0


def status():
    cfg = settings()
    for node in nodes():
        state = "running" if running(cfg, node) else "stopped"
        print(f"{node['name']:<20} {node['type']:<8} localhost {state}")
    return 0


def cron():
    cfg = settings()
    with open(os.path.join(cfg["SpoolDir"], "cron.log"), "a") as handle:
        handle.write(f"{int(time.time())}\n")
    return 0


def deploy():
    rc = check()
    if rc:
        return rc
    install()
    stop()
    return start()


COMMANDS = {
    "check": check,
    "install": install,
    "deploy": deploy,
    "start": start,
    "stop": stop,
    "status": status,
    "cron": cron,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: zeekctl {{{'|'.join(COMMANDS)}}}", file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]]())
