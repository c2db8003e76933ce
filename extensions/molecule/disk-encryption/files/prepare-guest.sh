#!/usr/bin/env bash
# Runs on the VM as root (test only). Idempotent.
set -euo pipefail
DB_DIR=/var/lib/rancher/k3s/server/db

# A SQLite datastore stand-in: NOT K3s. A python3 process that creates the
# table and rows once, then holds the database open (WAL), like kine does.
if [[ ! -f /usr/local/bin/edgefleet-sqlite-standin ]]; then
  cat >/usr/local/bin/edgefleet-sqlite-standin <<'PY'
#!/usr/bin/python3
"""edgefleet lab stand-in: holds a SQLite database open like K3s's kine does. NOT K3s."""
import os, sqlite3, sys, time
path = "/var/lib/rancher/k3s/server/db/state.db"
os.makedirs(os.path.dirname(path), exist_ok=True)
print("edgefleet-sqlite-standin: a lab stand-in for the K3s SQLite datastore, not K3s", flush=True)
db = sqlite3.connect(path)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB)")
if db.execute("SELECT count(*) FROM kine").fetchone()[0] == 0:
    db.executemany("INSERT INTO kine (name, value) VALUES (?, ?)",
                   [(f"/registry/lab/{i}", os.urandom(256)) for i in range(1000)])
    db.commit()
while True:
    db.execute("SELECT count(*) FROM kine").fetchone()
    time.sleep(5)
PY
  chmod 0755 /usr/local/bin/edgefleet-sqlite-standin
  cat >/etc/systemd/system/edgefleet-sqlite-standin.service <<'UNIT'
[Unit]
Description=edgefleet lab stand-in holding a SQLite datastore open (NOT K3s)

[Service]
ExecStart=/usr/local/bin/edgefleet-sqlite-standin
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now edgefleet-sqlite-standin.service
  for _ in $(seq 30); do
    [[ -f $DB_DIR/state.db ]] && sqlite3 "$DB_DIR/state.db" 'SELECT count(*) FROM kine' 2>/dev/null | grep -q 1000 && break
    sleep 1
  done
  echo changed
fi

# spare1: ext4 with a file (somebody's data).
S1=/dev/disk/by-id/virtio-edgefleet-spare1
if ! blkid -p "$S1" | grep -q 'TYPE="ext4"'; then
  mkfs.ext4 -q -F -L someones-data "$S1"
  m=$(mktemp -d); mount "$S1" "$m"
  head -c 100000 /dev/urandom >"$m/precious.bin"; umount "$m"; rmdir "$m"
  echo changed
fi
# spare2: a LUKS header that edgefleet did not create.
S2=/dev/disk/by-id/virtio-edgefleet-spare2
if ! blkid -p "$S2" | grep -q crypto_LUKS; then
  head -c 32 /dev/urandom | cryptsetup luksFormat -q --type luks2 --label someone-else \
    --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file=- "$S2"
  echo changed
fi
# Tang on loopback (port 80).
if ! systemctl is-active --quiet tangd.socket; then
  systemctl enable --now tangd.socket
  echo changed
fi
