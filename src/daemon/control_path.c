/* The control socket's default place, the one rule evtaskd and evtaskctl
 * share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control_path.h"

int evd_control_default_path(char *buf, size_t len) {
        const char *dir = getenv("RUNTIME_DIRECTORY"), *xdg = getenv("XDG_RUNTIME_DIR");
        int n;

        /* systemd gives one directory per RuntimeDirectory= entry, ':'
         * between them: the first is the unit's own. */
        if (dir && dir[0] == '/')
                n = snprintf(buf, len, "%.*s/control", (int) strcspn(dir, ":"), dir);
        else if (geteuid() == 0)
                n = snprintf(buf, len, "/run/evtaskd/control");
        else if (xdg && xdg[0] == '/')
                n = snprintf(buf, len, "%s/evtaskd/control", xdg);
        else
                return -ENOENT;
        return n < 0 || (size_t) n >= len ? -ENAMETOOLONG : 0;
}
