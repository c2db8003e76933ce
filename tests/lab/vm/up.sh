#!/usr/bin/env bash
# Bring up the lab's dm-crypt VM (idempotent): a qemu guest under TCG
# (-cpu ${VM_CPU:-qemu64 plus AES-NI and SSE4}, see below; -m ${VM_MEMORY:-2048})
# with a qcow2 overlay on the cached base image, two fresh raw data disks
# (/dev/disk/by-id/virtio-edgefleet-data and virtio-edgefleet-data2), two small spare disks
# for the safety tests (virtio-edgefleet-spare1, virtio-edgefleet-spare2), and a
# software TPM 2.0 (swtpm, state per run). The only network is qemu user-net
# with restrict=on: the guest reaches nothing, and its sshd is forwarded to
# 127.0.0.1:$VM_SSH_PORT only. Writes inventories/lab/generated/vm.yml.
#
# CPU model: qemu64 (an AMD model: the guest kernel turns on no Meltdown page-table isolation) plus
# AES-NI, PCLMULQDQ, SSSE3, SSE4.1/4.2 and POPCNT (with AES-NI and PCLMULQDQ alone the guest kernel hit a
# kernel warning at boot and never reached ssh; with these it boots and uses its aesni driver):
# without AES-NI dm-crypt falls back to the kernel's table-driven AES, measured under TCG at about
# 1 MiB/s for writes, and every write to the encrypted volumes pays for it. The guest kernel also boots
# with mitigations=off (VM_KERNEL_ARGS), a test VM that runs only our code: measured, fork and exec
# took half the time.
#
# CPU share: -smp ${VM_SMP:-2}, and VM_NICE (default -10) for qemu. The kernel groups processes by
# session (sched autogroup), and qemu -daemonize starts a session of its own; each lab container's
# services start more. Under that grouping a nice value set on a process counts only inside its own
# group, so qemu's group gets the nice value too (/proc/PID/autogroup). Without it a busy podman lab
# beside the VM got most of the CPU (docs/lab.md, "Where the CPU goes").
#
# VM_BOOT=efi boots the same root image through UEFI instead of -kernel/-initrd: OVMF from Debian's
# ovmf package (the Secure Boot capable code image, q35 with SMM), the ESP of build-esp.sh (signed
# shim, signed grub, the signed kernel), VM_SECURE_BOOT=on with the Microsoft keys enrolled
# (OVMF_VARS_4M.ms.fd: Secure Boot enforced) or off with no keys (OVMF_VARS_4M.fd: setup mode,
# nothing enforced). A writable copy of the vars lives in the run directory.
set -euo pipefail
source "$(dirname "$0")/vm-lib.sh"

write_inventory() {
  mkdir -p "$(dirname "$VM_INVENTORY")"
  local tmp
  tmp=$(mktemp "$VM_INVENTORY.XXXXXX")
  cat >"$tmp" <<YAML
# Written by tests/lab/vm/up.sh: the lab's dm-crypt VM (qemu/TCG, swtpm). Do not edit.
all:
  children:
    edgefleet_vm:
      hosts:
        $VM_NAME:
          ansible_host: 127.0.0.1
          ansible_port: $VM_SSH_PORT
          ansible_user: $VM_USER
          ansible_connection: ssh
          ansible_ssh_private_key_file: $VM_KEY
          ansible_python_interpreter: /usr/bin/python3
          edgefleet_lab_vm: true
          edgefleet_lab_vm_data_disk: /dev/disk/by-id/virtio-edgefleet-data
          edgefleet_lab_vm_data2_disk: /dev/disk/by-id/virtio-edgefleet-data2
          edgefleet_lab_vm_spare_disks:
            - /dev/disk/by-id/virtio-edgefleet-spare1
            - /dev/disk/by-id/virtio-edgefleet-spare2
YAML
  mv "$tmp" "$VM_INVENTORY"
}

if vm_pid_alive "$VM_RUN/qemu.pid" "$VM_RUN/"; then
  # Running (maybe still booting): reuse it, never restart it under someone's feet.
  vm_wait_ssh "${VM_BOOT_TIMEOUT:-420}" || vm_die "the VM (pid $(<"$VM_RUN/qemu.pid")) runs but ssh does not answer; make lab-vm-down first"
  vm_log "already running (pid $(<"$VM_RUN/qemu.pid")), ssh on 127.0.0.1:$VM_SSH_PORT"
  write_inventory
  exit 0
fi
# A half-started or dead run: clear it first (only our own pids).
[[ -d "$VM_RUN" ]] && "$VM_DIR/down.sh"

base=$("$VM_DIR/build-image.sh")
if ss -Hltn "sport = :$VM_SSH_PORT" | grep -q .; then
  vm_die "127.0.0.1:$VM_SSH_PORT is taken by another process; set VM_SSH_PORT to a free port"
fi

start=$SECONDS
mkdir -p "$VM_RUN/tpm"
chmod 0700 "$VM_RUN"
qemu-img create -q -f qcow2 -F raw -b "$base/root.img" "$VM_RUN/root.qcow2"
truncate -s 1G "$VM_RUN/data.img" "$VM_RUN/data2.img"
truncate -s 64M "$VM_RUN/spare1.img" "$VM_RUN/spare2.img"

swtpm socket --tpm2 --tpmstate dir="$VM_RUN/tpm" \
  --ctrl type=unixio,path="$VM_RUN/swtpm.sock" \
  --log file="$VM_RUN/swtpm.log",level=1 \
  --pid file="$VM_RUN/swtpm.pid" --daemon
for _ in $(seq 50); do [[ -S "$VM_RUN/swtpm.sock" ]] && break; sleep 0.1; done
[[ -S "$VM_RUN/swtpm.sock" ]] || vm_die "swtpm did not create its socket (see $VM_RUN/swtpm.log)"

esp_args=()
boot_args=(-kernel "$base/vmlinuz" -initrd "$base/initrd.img"
  -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet ${VM_KERNEL_ARGS-mitigations=off}")
case "${VM_BOOT:-kernel}" in
  kernel) ;;
  efi)
    esp=$("$VM_DIR/build-esp.sh")
    case "${VM_SECURE_BOOT:-on}" in
      on) vars=/usr/share/OVMF/OVMF_VARS_4M.ms.fd ;;
      off) vars=/usr/share/OVMF/OVMF_VARS_4M.fd ;;
      *) vm_die "VM_SECURE_BOOT must be on or off" ;;
    esac
    code=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
    [[ -f "$code" && -f "$vars" ]] || vm_die "$code or $vars is missing (apt-get install ovmf)"
    cp "$vars" "$VM_RUN/OVMF_VARS.fd"
    boot_args=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
      -global ICH9-LPC.disable_s3=1
      -drive if=pflash,format=raw,unit=0,readonly=on,file="$code"
      -drive if=pflash,format=raw,unit=1,file="$VM_RUN/OVMF_VARS.fd")
    # After the other disks on the command line, so the root disk stays /dev/vda.
    esp_args=(-drive file="$esp",if=none,id=esp,format=raw,readonly=on
      -device virtio-blk-pci,drive=esp,serial=edgefleet-esp,bootindex=0)
    ;;
  *) vm_die "VM_BOOT must be kernel or efi" ;;
esac

disk() { printf -- '-drive file=%s,if=none,id=%s,format=%s,cache=unsafe -device virtio-blk-pci,drive=%s,serial=%s' "$@"; }
# shellcheck disable=SC2046
qemu-system-x86_64 -name "$VM_NAME" \
  -accel tcg,tb-size=256 -cpu "${VM_CPU:-qemu64,+aes,+pclmulqdq,+ssse3,+sse4.1,+sse4.2,+popcnt}" -m "${VM_MEMORY:-2048}" -smp "${VM_SMP:-2}" \
  -display none -serial file:"$VM_RUN/console.log" -monitor none \
  -daemonize -pidfile "$VM_RUN/qemu.pid" \
  "${boot_args[@]}" \
  $(disk "$VM_RUN/root.qcow2" root qcow2 root edgefleet-root) \
  $(disk "$VM_RUN/data.img" data raw data edgefleet-data) \
  $(disk "$VM_RUN/data2.img" data2 raw data2 edgefleet-data2) \
  $(disk "$VM_RUN/spare1.img" spare1 raw spare1 edgefleet-spare1) \
  $(disk "$VM_RUN/spare2.img" spare2 raw spare2 edgefleet-spare2) \
  "${esp_args[@]}" \
  -chardev socket,id=chrtpm,path="$VM_RUN/swtpm.sock" \
  -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0 \
  -netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:"$VM_SSH_PORT"-:22 \
  -device virtio-net-pci,netdev=n0

qemu_pid=$(cat "$VM_RUN/qemu.pid")
if [[ -w /proc/$qemu_pid/autogroup ]]; then
  echo "${VM_NICE:--10}" >"/proc/$qemu_pid/autogroup" || vm_log "cannot set the nice value of qemu's autogroup"
fi
for task in /proc/"$qemu_pid"/task/*; do
  renice -n "${VM_NICE:--10}" -p "${task##*/}" >/dev/null || vm_log "cannot renice qemu thread ${task##*/}"
done
vm_log "booting (TCG; ssh usually answers after about 50 s)"
if ! vm_wait_ssh "${VM_BOOT_TIMEOUT:-420}"; then
  tail -n 30 "$VM_RUN/console.log" >&2 || true
  vm_die "no ssh after ${VM_BOOT_TIMEOUT:-420} s (console: $VM_RUN/console.log)"
fi
write_inventory
vm_log "up in $((SECONDS - start)) s; ssh -p $VM_SSH_PORT -i $VM_KEY $VM_USER@127.0.0.1"
