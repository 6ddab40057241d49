"""Drives depot's SFTP entrance with paramiko (python3-paramiko), as a
scheduled export script would: sign in with a key or with a personal access
token as password, put, list, read from an offset, stat, refusals, remove.
Prints one JSON object; the Go test (e2e/sftp_test.go) checks it."""
import hashlib, io, json, os, sys

import paramiko

host, port, user, keyfile, token, knownhosts, path = sys.argv[1:8]
data = bytes((i * 7 + 3) % 251 for i in range(5 * 1024 * 1024 + 77))
out = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def connect(**auth):
    c = paramiko.SSHClient()
    c.load_host_keys(knownhosts)
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect(host, int(port), username=user, allow_agent=False, look_for_keys=False, timeout=10, **auth)
    return c


def err_of(fn):
    try:
        fn()
        return "ok"
    except IOError as e:
        return type(e).__name__ + ":" + str(getattr(e, "errno", "")) + ":" + str(e)


# A key (ed25519, from ssh-keygen).
c = connect(key_filename=keyfile)
sftp = c.open_sftp()
sftp.putfo(io.BytesIO(data), path)  # pipelined writes, then a stat of the size
out["listing"] = {a.filename: a.st_size for a in sftp.listdir_attr(os.path.dirname(path))}
with sftp.open(path, "rb") as f:
    f.seek(1234567)
    out["at_offset_ok"] = f.read(1000) == data[1234567:1234567 + 1000]
    f.seek(len(data) - 10)
    out["tail_ok"] = f.read(100) == data[-10:]
out["stat_size"] = sftp.stat(path).st_size
out["stat_missing"] = err_of(lambda: sftp.stat(path + ".missing"))
out["rename"] = err_of(lambda: sftp.rename(path, path + ".renamed"))  # SFTP v3 rename
out["rename_back"] = err_of(lambda: sftp.rename(path + ".renamed", path))
sftp.putfo(io.BytesIO(b"other"), path + ".other")
out["rename_onto_existing"] = err_of(lambda: sftp.rename(path, path + ".other"))
out["chmod"] = err_of(lambda: sftp.chmod(path, 0o600))
out["readlink"] = err_of(lambda: sftp.readlink(path))
sftp.close()
c.close()

# A personal access token as the password.
c = connect(password=token)
sftp = c.open_sftp()
got = io.BytesIO()
sftp.getfo(path, got)
out["token_get_ok"] = got.getvalue() == data
sftp.remove(path)
out["after_remove"] = err_of(lambda: sftp.stat(path))
sftp.close()
c.close()

# A wrong password is refused.
try:
    connect(password="dpt_" + "a" * 52)
    out["bad_password"] = "accepted"
except paramiko.AuthenticationException:
    out["bad_password"] = "refused"
print(json.dumps(out))
