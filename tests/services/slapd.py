"""A real OpenLDAP server (Debian's slapd) in a temporary directory, loaded
with a small directory of people and groups, on free 127.0.0.1 ports: plain
LDAP (StartTLS offered) and ldaps, with a certificate from a throw-away CA."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.services.certs import CertFiles, make_certs

BASE = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "admin-secret"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")

# name -> (display name, e-mail, password, groups)
PEOPLE = {
    "alice": ("Alice Liddell", "alice@example.org", "alice-pw", ("researchers", "hub-admins")),
    "bob": ("Bob Builder", "bob@example.org", "bob-pw", ("researchers",)),
    "carol": ("Carol Danvers", "carol@example.org", "carol-pw", ()),
    "Dave": ("Dave Grohl", "dave@example.org", "dave-pw", ("Data Science",)),
}


def build_ldif() -> str:
    entries = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example",
        f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups",
    ]
    groups: dict[str, list[str]] = {}
    for uid, (display, mail, password, member_of) in PEOPLE.items():
        given, surname = display.split(" ", 1)
        entries.append(
            f"dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
            f"cn: {display}\nsn: {surname}\ngivenName: {given}\ndisplayName: {display}\n"
            f"mail: {mail}\nuserPassword: {password}"
        )
        for group in member_of:
            groups.setdefault(group, []).append(f"uid={uid},ou=people,{BASE}")
    groups["empty-group"] = [ROOT_DN]  # groupOfNames needs one member
    for group, members in groups.items():
        lines = [f"dn: cn={group},ou=groups,{BASE}", "objectClass: groupOfNames", f"cn: {group}"]
        lines += [f"member: {member}" for member in members]
        entries.append("\n".join(lines))
    return "\n\n".join(entries) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def missing_tools() -> list[str]:
    """What this machine lacks to run slapd (install them: see README)."""
    needed = {"slapd": "/usr/sbin/slapd", "slapadd": "/usr/sbin/slapadd"}
    missing = [name for name, path in needed.items() if not Path(path).exists()]
    if not Path("/etc/ldap/schema/core.schema").exists():
        missing.append("/etc/ldap/schema (Debian package slapd)")
    return missing


@dataclass
class Slapd:
    uri: str  # ldap://127.0.0.1:PORT (StartTLS offered)
    ldaps_uri: str
    certs: CertFiles
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _config(directory: Path, certs: CertFiles) -> str:
    includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
    return f"""{includes}
pidfile {directory}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {certs.ca}
TLSCertificateFile {certs.cert}
TLSCertificateKeyFile {certs.key}
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {directory}/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
"""


def start_slapd(directory: Path) -> Slapd:
    missing = missing_tools()
    if missing:
        raise AssertionError(
            "the LDAP tests need Debian's slapd: missing "
            + ", ".join(missing)
            + " (apt-get install slapd ldap-utils; `make test` installs them)"
        )
    (directory / "db").mkdir(parents=True)
    certs = make_certs(directory)
    conf = directory / "slapd.conf"
    conf.write_text(_config(directory, certs))
    (directory / "directory.ldif").write_text(build_ldif())
    subprocess.run(
        ["/usr/sbin/slapadd", "-f", str(conf), "-l", str(directory / "directory.ldif")],
        check=True,
        capture_output=True,
    )
    port, tls_port = free_port(), free_port()
    urls = f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
    # -d keeps slapd in the foreground, a child the fixture can stop
    command = ["/usr/sbin/slapd", "-f", str(conf), "-h", urls, "-d", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Slapd(f"ldap://127.0.0.1:{port}", f"ldaps://127.0.0.1:{tls_port}", certs, proc)
    _wait_listening(server, port)
    return server


def _wait_listening(server: Slapd, port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError("slapd exited: " + server.proc.stderr.read().decode())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise AssertionError("slapd did not listen within 30 s")


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def person_dn(uid: str) -> str:
    return f"uid={uid},ou=people,{BASE}"


def group_dn(name: str) -> str:
    return f"cn={name},ou=groups,{BASE}"


def change_membership(server: Slapd, group: str, uid: str, *, add: bool) -> None:
    """Add UID to (or remove it from) GROUP in the running directory."""
    import ldap

    conn = ldap.initialize(server.uri)
    conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
    op = ldap.MOD_ADD if add else ldap.MOD_DELETE
    conn.modify_s(group_dn(group), [(op, "member", [person_dn(uid).encode()])])
    conn.unbind_s()
