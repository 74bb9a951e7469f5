"""benchmarks/collection/fleet.py: the inventory it converges gives every host names and a subnet of its
own that the example playbook can use (interface names within the kernel's 15 bytes), and its account of
what ran once reads ansible-playbook's output as it is."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "collection"))

import fleet  # noqa: E402


def test_every_host_has_its_own_names_and_subnet() -> None:
    hosts = fleet.inventory(50)["all"]["children"]["nshosts"]["hosts"]
    assert len(hosts) == 50
    prefixes = [h["isolated_http_prefix"] for h in hosts.values()]
    subnets = [h["isolated_http_subnet"] for h in hosts.values()]
    assert len(set(prefixes)) == len(set(subnets)) == 50
    assert all(len(f"pfe-{p}0") <= 15 for p in prefixes)
    assert all(0 <= int(s.rsplit(".", 1)[1]) <= 255 for s in subnets)


def test_tasks_run_once_are_counted_per_host() -> None:
    log = ("TASK [r : Build the wheels] ***\nok: [pfb1]\n\nTASK [r : Install from the wheels] **\n"
           "changed: [pfb1]\nchanged: [pfb2]\nTASK [r : Start] *\nok: [pfb1]\n")
    assert fleet._once_lines(log) == {"r : Build the wheels": 1, "r : Install from the wheels": 2}


def test_a_guest_joins_the_inventory_with_its_own_names_and_ssh() -> None:
    guest = {"address": "127.0.0.1", "port": 40022, "user": "root", "identity_file": "/k/id_ed25519"}
    children = fleet.inventory(3, guest)["all"]["children"]
    (vm,) = children["guests"]["hosts"].values()
    assert (vm["ansible_host"], vm["ansible_port"], vm["ansible_user"]) == ("127.0.0.1", 40022, "root")
    assert vm["ansible_ssh_private_key_file"] == "/k/id_ed25519"
    # the connection timeout molecule's vm scenario gives its emulated guests
    scenario = yaml.safe_load((ROOT / "molecule" / "vm" / "molecule.yml").read_text())
    assert vm["ansible_timeout"] == scenario["provisioner"]["config_options"]["defaults"]["timeout"]
    hosts = [*children["nshosts"]["hosts"].values(), vm]
    assert len({h["isolated_http_prefix"] for h in hosts}) == 4
    assert len({h["isolated_http_subnet"] for h in hosts}) == 4
    assert "guests" not in fleet.inventory(3)["all"]["children"]


def test_task_seconds_reads_the_stamps_of_ansibles_own_log(tmp_path: Path) -> None:
    """A real ansible-playbook run with ANSIBLE_LOG_PATH: every task's banner is found, in order."""
    import os
    import subprocess

    book = tmp_path / "play.yml"
    book.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - name: first [with brackets]\n      ansible.builtin.debug: {msg: one}\n"
                    "    - name: second\n      ansible.builtin.debug: {msg: two}\n")
    log = tmp_path / "ansible.log"
    env = dict(os.environ, ANSIBLE_LOG_PATH=str(log), ANSIBLE_NOCOLOR="1")
    playbook = Path(sys.executable).parent / "ansible-playbook"
    subprocess.run([str(playbook), "-i", "localhost,", "-c", "local", str(book)], env=env, check=True,
                   capture_output=True)
    tasks = fleet.task_seconds(log.read_text())
    assert [name for name, _ in tasks] == ["first [with brackets]", "second"]
    assert all(seconds >= 0 for _, seconds in tasks)


def test_task_seconds_is_the_time_from_one_banner_to_the_next() -> None:
    stamp = "p=1 u=root n=ansible INFO| "
    log = (f"2026-12-03 09:00:00,000 {stamp}PLAY [all] ***\n"
           f"2026-12-03 09:00:00,500 {stamp}TASK [r : Copy the wheels] ***\n"
           f"2026-12-03 09:00:01,000 {stamp}changed: [pfb1]\n"
           f"2026-12-03 09:00:03,250 {stamp}TASK [r : Install] ***\n"
           f"2026-12-03 09:00:04,000 {stamp}RUNNING HANDLER [r : Restart] ***\n"
           f"2026-12-03 09:00:04,100 {stamp}PLAY RECAP ***\n")
    assert fleet.task_seconds(log) == [("r : Copy the wheels", 2.75), ("r : Install", 0.75),
                                       ("r : Restart", 0.1)]


def test_the_report_lists_the_costliest_tasks_per_host_of_each_run() -> None:
    runs = [{"hosts": 5, "forks": 5, "strategy": "linear", "tasks": [("copy", 10.0), ("ping", 1.0)]},
            {"hosts": 20, "forks": 5, "strategy": "linear", "vm": "",
             "tasks": [("copy", 60.0), ("new", 2.0)]},
            {"hosts": 50, "forks": 5, "strategy": "linear"}]  # an older record, without task times
    lines = fleet.task_table(runs, top=2)
    assert lines[3] == "| task | 5 hosts, forks 5, linear | 20 hosts, forks 5, linear |"
    assert lines[5:] == ["| copy | 2.00 | 3.00 |", "| ping | 0.20 | - |"]
    assert fleet.task_table([runs[2]]) == []


TAIL = "    skipped=2    rescued=0    ignored=0"
RECAP = "\n".join([
    "PLAY RECAP *********************************************************************",
    "pfb-vm                     : ok=22   changed=9    unreachable=1    failed=0" + TAIL,
    "pfb1                       : ok=30   changed=10   unreachable=0    failed=0" + TAIL,
    "pfb2                       : ok=12   changed=3    unreachable=0    failed=1" + TAIL, ""])


def test_a_failed_run_names_the_hosts_its_recap_counts_unreachable_or_failed() -> None:
    trouble = fleet.recap_trouble("TASK [x] ***\nok: [pfb1]\n\n" + RECAP)
    assert trouble == {"unreachable": ["pfb-vm"], "failed": ["pfb2"]}
    cell = fleet.failed_text({"status": 4, **trouble, "output": "failed-20h.log"})
    assert cell == "failed (4: unreachable pfb-vm; failed pfb2; failed-20h.log)"
    none = fleet.recap_trouble("")
    assert fleet.failed_text({"status": 2, **none, "output": "f.log"}) == "failed (2; f.log)"
