#!/usr/bin/env python3
"""Prune the desktop-sim VM's module tree (called by scripts/sim.sh).

usage: prune_modules.py MODDIR REMOVED_LIST

MODDIR is lib/modules/<kver> of the kit's linux-image package with a
modules.dep that depmod wrote for the whole tree.  Deletes from it:

* drivers a VM never needs (hardware, sound, wireless, GPUs, ...): only the
  paths KEEP names stay, plus whatever those need;
* the modules tests build and load themselves (TEST_MODULES), everything
  that needs them and their exclusive dependencies (those nothing else in
  the whole tree needs), so that a successful load in the VM proves the
  module came from dmb and not from the VM's own tree.

Writes the relative paths of the deleted modules to REMOVED_LIST; fails if a
module the VM's init or dockerd needs would go.  depmod must run again
afterwards.
"""

import os
import sys

# Paths under kernel/ (prefixes) that a qemu VM running dockerd can use.
KEEP = (
    "arch/", "block/", "crypto/", "fs/", "kernel/", "lib/", "mm/", "net/",
    "security/", "virt/",
    "drivers/virtio/", "drivers/block/", "drivers/char/", "drivers/md/",
    "drivers/net/", "drivers/vhost/", "drivers/tty/", "drivers/nvdimm/",
    "drivers/dax/", "drivers/acpi/", "drivers/crypto/virtio/",
    "drivers/scsi/virtio_scsi.ko", "drivers/scsi/scsi_mod.ko",
    "drivers/scsi/sd_mod.ko", "drivers/input/", "drivers/ptp/",
    "drivers/pps/", "drivers/connector/",
)
# ...minus these, which are hardware or radio again.
DROP = (
    "drivers/net/wireless/", "drivers/net/ethernet/", "drivers/net/usb/",
    "drivers/net/can/", "drivers/net/wwan/", "drivers/net/ieee802154/",
    "drivers/net/fddi/", "drivers/net/hamradio/", "drivers/net/wan/",
    "drivers/net/phy/", "drivers/net/mdio/", "drivers/net/pcs/",
    "drivers/net/plip/", "drivers/net/arcnet/", "drivers/net/appletalk/",
    "drivers/net/slip/", "drivers/net/ppp/", "drivers/net/ipa/",
    "drivers/char/tpm/", "drivers/char/ipmi/", "drivers/char/agp/",
    "drivers/input/joystick/", "drivers/input/touchscreen/",
    "drivers/input/tablet/", "drivers/input/rmi4/", "drivers/md/bcache/",
    "net/wireless/", "net/mac80211/", "net/bluetooth/", "net/nfc/",
    "net/ieee802154/", "net/mac802154/", "net/can/", "net/6lowpan/",
    "net/rfkill/",
)
# The in-tree modules dmb's tests build and load (by module name, "-" and
# "_" alike).
TEST_MODULES = ("sctp", "dm_crypt", "openvswitch")
# What the VM's init loads and what dockerd's bridge network and overlay2
# storage pull in; pruning must never take these.
NEEDED = (
    "virtio_pci", "virtio_net", "virtio_blk", "virtio_rng", "ext4", "overlay",
    "bridge", "br_netfilter", "veth", "nf_tables", "nf_nat", "nf_conntrack",
    "nft_compat", "nft_chain_nat", "xt_MASQUERADE", "xt_addrtype",
    "xt_conntrack", "ip_tables", "iptable_nat", "iptable_filter",
)


def name_of(path):
    return os.path.basename(path)[: -len(".ko")].replace("-", "_")


def main(moddir, removed_list):
    deps = {}  # module path (relative to moddir) -> its direct dependencies
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            mod, _, rest = line.partition(":")
            deps[mod] = rest.split()
    by_name = {name_of(p): p for p in deps}
    users = {p: set() for p in deps}  # module -> modules that need it
    for p, ds in deps.items():
        for d in ds:
            users.setdefault(d, set()).add(p)

    def closure(start, edges):
        seen, todo = set(), list(start)
        while todo:
            p = todo.pop()
            if p not in seen:
                seen.add(p)
                todo.extend(edges.get(p, ()))
        return seen

    tests = {by_name[n] for n in TEST_MODULES if n in by_name}
    missing = sorted(set(TEST_MODULES) - {name_of(p) for p in tests})
    if missing:
        sys.exit(f"prune: the kernel has no module {', '.join(missing)}")
    # The test modules and everything that needs them...
    banned = closure(tests, users)
    # ...and their dependencies that only banned modules need.
    candidates = closure(tests, deps) - banned
    changed = True
    while changed:
        changed = False
        for p in sorted(candidates - banned):
            if users.get(p, set()) <= banned:
                banned.add(p)
                changed = True

    def kept_by_policy(p):
        rel = p[len("kernel/"):] if p.startswith("kernel/") else p
        return rel.startswith(KEEP) and not rel.startswith(DROP)

    roots = {p for p in deps if kept_by_policy(p) and p not in banned}
    keep = closure(roots, deps)
    assert not keep & banned, sorted(keep & banned)

    lost = [n for n in NEEDED if n in by_name and by_name[n] not in keep]
    absent = [n for n in NEEDED if n not in by_name]
    if lost or absent:
        sys.exit(f"prune: would lose {lost}, kernel lacks {absent}")

    removed = sorted(set(deps) - keep)
    for p in removed:
        os.remove(os.path.join(moddir, p))
    # Empty directories are noise in the tree.
    for root, dirs, files in os.walk(os.path.join(moddir, "kernel"), topdown=False):
        if not dirs and not files:
            os.rmdir(root)
        elif not os.listdir(root):
            os.rmdir(root)
    with open(removed_list, "w") as f:
        f.writelines(p + "\n" for p in removed)
    shown = sorted(name_of(p) for p in banned)
    print(
        f"prune: kept {len(keep)} of {len(deps)} modules; removed the test "
        f"modules and their exclusive dependencies: {' '.join(shown)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
