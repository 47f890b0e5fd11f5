"""hermes-testbed TLS helper, prepended to the servers that need a certificate (acme.py,
registry.py): a CA of their own and one server certificate it signs, made with openssl.

Test support only: never part of the hermes-infra release.
"""

import os
import subprocess


def make_ca_and_server_cert(work, ca_name, name, alt_names):
    """Writes work/ca.{key,crt} (CN `ca_name`) and work/server.{key,crt} for `name`, valid for
    `alt_names` (`DNS:...`, `IP:...`), 30 days, P-256 keys."""
    os.makedirs(work, exist_ok=True)

    def run(*args):
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    run("openssl", "req", "-x509", "-new", "-nodes", "-newkey", "ec",
        "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", f"{work}/ca.key",
        "-out", f"{work}/ca.crt", "-days", "30", "-subj", f"/CN={ca_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-keyout", f"{work}/server.key", "-out", f"{work}/server.csr", "-subj", f"/CN={name}")
    with open(f"{work}/server.ext", "w") as f:
        f.write(f"subjectAltName={','.join(alt_names)}\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", f"{work}/server.csr", "-CA", f"{work}/ca.crt",
        "-CAkey", f"{work}/ca.key", "-CAcreateserial", "-out", f"{work}/server.crt",
        "-days", "30", "-extfile", f"{work}/server.ext")
