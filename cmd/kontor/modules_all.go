package main

// The modules compiled into Kontor. Each registers itself from init; the
// configuration enables them per server (modules.enabled).
import (
	_ "kontor.im/kontor/core/mod/blocking"
	_ "kontor.im/kontor/core/mod/carbons"
	_ "kontor.im/kontor/core/mod/component"
	_ "kontor.im/kontor/core/mod/disco"
	_ "kontor.im/kontor/core/mod/extdisco"
	_ "kontor.im/kontor/core/mod/gate"
	_ "kontor.im/kontor/core/mod/last"
	_ "kontor.im/kontor/core/mod/mam"
	_ "kontor.im/kontor/core/mod/muc"
	_ "kontor.im/kontor/core/mod/offline"
	_ "kontor.im/kontor/core/mod/pep"
	_ "kontor.im/kontor/core/mod/ping"
	_ "kontor.im/kontor/core/mod/presence"
	_ "kontor.im/kontor/core/mod/private"
	_ "kontor.im/kontor/core/mod/proxy65"
	_ "kontor.im/kontor/core/mod/push"
	_ "kontor.im/kontor/core/mod/register"
	_ "kontor.im/kontor/core/mod/roster"
	_ "kontor.im/kontor/core/mod/time"
	_ "kontor.im/kontor/core/mod/upload"
	_ "kontor.im/kontor/core/mod/vcard"
	_ "kontor.im/kontor/core/mod/version"
)
