# Test stand-in for OpenWrt's /lib/functions.sh, installed into the scratch root by
# xc/openwrt-test.sh: OpenWrt's base files are in no package registry we reach. Only what
# the pixelserv-tls package uses, written to behave as OpenWrt's does:
#  - config_load evaluates the UCI file as shell, as OpenWrt's evaluates `uci export` (the
#    same syntax, quoted the same way): `config TYPE NAME` opens a section, `option NAME
#    VALUE` sets CONFIG_<section>_<name>, `list` appends;
#  - config_get VAR SECTION OPTION DEFAULT gives DEFAULT for a missing or empty option,
#    config_get_bool maps 1/on/true/yes/enabled and 0/off/false/no/disabled;
#  - default_postinst and default_prerm run each /etc/init.d/ script of the package's file
#    list with enable+start and stop+disable (only enable/disable in an image build, i.e.
#    with IPKG_INSTROOT set, through $IPKG_INSTROOT/etc/rc.common).

CONFIG_SECTION=
CONFIG_SECTIONS=
package() { :; }
config() {
	CONFIG_SECTION=${2:-cfg$(echo "$CONFIG_SECTIONS" | wc -w)}
	CONFIG_SECTIONS="$CONFIG_SECTIONS $CONFIG_SECTION"
	eval "CONFIG_${CONFIG_SECTION}_TYPE=\$1"
}
option() { eval "CONFIG_${CONFIG_SECTION}_$1=\$2"; }
list() {
	eval "_n=\$(( \${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0} + 1 ))"
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$_n=\$2; CONFIG_${CONFIG_SECTION}_$1_LENGTH=$_n"
}
config_load() {
	CONFIG_SECTIONS=
	# shellcheck disable=SC1090
	. "${UCI_CONFIG_DIR:-/etc/config}/$1"
}
config_get() { eval "$1=\${CONFIG_$2_$3:-\$4}"; }
config_get_bool() {
	config_get _b "$2" "$3" "$4"
	case $_b in
	1 | on | true | yes | enabled) _b=1 ;;
	0 | off | false | no | disabled) _b=0 ;;
	*) _b=$4 ;;
	esac
	eval "$1=\$_b"
}

_init_scripts() { # ACTION... for each init script of package $1
	_pkg=$(basename "${1%.*}")
	shift
	for _i in $(grep -s '^/etc/init.d/' "$IPKG_INSTROOT/usr/lib/opkg/info/$_pkg.list"); do
		for _a in "$@"; do
			sh "$IPKG_INSTROOT/etc/rc.common" "$IPKG_INSTROOT$_i" "$_a" || return 1
		done
	done
}
default_postinst() {
	_pkg=$(basename "${1%.*}")
	if [ -f "$IPKG_INSTROOT/usr/lib/opkg/info/$_pkg.postinst-pkg" ]; then
		( . "$IPKG_INSTROOT/usr/lib/opkg/info/$_pkg.postinst-pkg" )
	fi
	if [ -n "$IPKG_INSTROOT" ]; then
		_init_scripts "$1" enable
	elif [ "${PKG_UPGRADE:-}" != 1 ]; then
		_init_scripts "$1" enable start
	else
		_init_scripts "$1" start
	fi
}
default_prerm() {
	if [ -n "$IPKG_INSTROOT" ]; then
		_init_scripts "$1" disable
	elif [ "${PKG_UPGRADE:-}" != 1 ]; then
		_init_scripts "$1" disable stop
	else
		_init_scripts "$1" stop
	fi
}
