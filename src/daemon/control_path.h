/* Where the control socket is, for evtaskd and evtaskctl alike. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The protocol's version: the `version` of every request and reply. */
#define EVD_CONTROL_VERSION 1

/* The default socket's path: $RUNTIME_DIRECTORY/control under systemd's
 * RuntimeDirectory=, /run/evtaskd/control for root, and
 * $XDG_RUNTIME_DIR/evtaskd/control for other users. 0, or -ENOENT when
 * there is none (a user without a runtime directory), or -ENAMETOOLONG. */
int evd_control_default_path(char *buf, size_t len);
