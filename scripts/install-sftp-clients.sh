#!/bin/sh
# Installs the SFTP clients the SFTP tests drive (issue 23), from Debian
# packages: OpenSSH's sftp, scp and ssh-keygen (openssh-client), rclone
# (its sftp backend) and paramiko (python3-paramiko, for /usr/bin/python3:
# the Debian package, not a virtualenv).
# Idempotent: does nothing when every client is there.
set -eu
need=
command -v sftp >/dev/null 2>&1 && command -v scp >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || need="$need openssh-client"
command -v rclone >/dev/null 2>&1 || need="$need rclone"
/usr/bin/python3 -c 'import paramiko' >/dev/null 2>&1 || need="$need python3-paramiko"
if [ -n "$need" ]; then
	echo "install-sftp-clients: installing$need (apt)" >&2
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
echo "sftp:     $(command -v sftp)"
echo "rclone:   $(command -v rclone) ($(rclone version 2>/dev/null | head -1))"
echo "paramiko: $(/usr/bin/python3 -c 'import paramiko; print(paramiko.__version__)')"
