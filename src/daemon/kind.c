/* The kind table: the row of each job kind, in the order of
 * EVD_KIND_LIST. */
#include "kind.h"

static const evd_kind *const kinds[EVD_KIND_COUNT] = {
        [EVD_KIND_TICKER] = &evd_kind_ticker,
        [EVD_KIND_SLEEP] = &evd_kind_sleep,
        [EVD_KIND_BLOCKING] = &evd_kind_blocking,
        [EVD_KIND_WEDGE] = &evd_kind_wedge,
        [EVD_KIND_EXEC] = &evd_kind_exec,
        [EVD_KIND_MODULE] = &evd_kind_module,
};

const evd_kind *evd_kind_get(enum evd_kind_id id) {
        return kinds[id];
}

const char *evd_kind_name(enum evd_kind_id id) {
        return (size_t) id < ARRAY_SIZE(kinds) ? evd_kind_names.names[id] : "unknown";
}
