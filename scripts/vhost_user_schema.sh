# Sourced by scripts/install.sh and scripts/build_debs.sh: the back-end types QEMU's
# vhost-user.json schema (docs/interop/vhost-user.json, unchanged through QEMU 10) knows. libvirt
# reads every file in /usr/share/qemu/vhost-user and gives up on all of them (virtiofsd's and
# vhost-user-gpu's discovery included) when one names another type, so the gpio, i2c, scmi and
# sound back ends get no description file.
schema_types=" 9p balloon block caif console crypto gpu input net rng rpmsg rproc-serial scsi vsock fs "
