-- Replaces WirePlumber's own main.lua.d/90-enable-all.lua for the tests' headless PipeWire
-- (tests/e2e/pipewire_host.py puts this folder at $XDG_CONFIG_HOME/wireplumber). WirePlumber
-- 0.4 exits when a component it loads needs a D-Bus session bus and there is none: the ALSA
-- monitor's device reservation and the Flatpak portal's permission store. There are no devices
-- to monitor here, so only what picks default nodes and links streams to them is kept.
load_module("metadata")
default_access.properties["enable-flatpak-portal"] = false
default_access.enable()
-- Nothing is stored between runs: every test starts from the same defaults.
device_defaults.properties["use-persistent-storage"] = false
device_defaults.enable()
