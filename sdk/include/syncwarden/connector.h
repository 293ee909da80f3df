/*
 * Syncwarden connector ABI, version 1.4.
 *
 * The only interface between the Syncwarden kernel and a connector shared
 * library. Plain C99, stdint/stddef only. Read top to bottom; sdk/ABI.md has
 * the rules the kernel promises and the change log.
 *
 * A connector exports exactly one symbol, SW_ENTRY_SYMBOL, a function that
 * returns a pointer to a static sw_connector. Nothing may run in static
 * constructors; the kernel reads the manifest before creating any instance.
 *
 * Ownership rule for every pointer below: valid during the call only, unless
 * the comment says otherwise.
 */
#ifndef SYNCWARDEN_CONNECTOR_H
#define SYNCWARDEN_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_ABI_MAJOR 1
#define SW_ABI_MINOR 4
#define SW_ENTRY_SYMBOL "sw_connector_entry"

#if defined(__GNUC__)
#define SW_EXPORT __attribute__((visibility("default")))
#else
#define SW_EXPORT
#endif

/* ---- basic types -------------------------------------------------------- */

/* A string or byte buffer. Not NUL-terminated. ptr may be NULL when len is 0. */
typedef struct sw_str {
    const char* ptr;
    size_t len;
} sw_str;

/* Outcome of every hook and of host calls that can fail. The kernel acts on
 * it: retryable and throttled may be retried, everything else is final. */
typedef enum sw_status {
    SW_OK = 0,
    SW_RETRYABLE = 1,  /* transient: timeouts, 5xx, lost connection */
    SW_THROTTLED = 2,  /* rate limited; sw_error.retry_after_ms says how long */
    SW_PERMANENT = 3,  /* this item will never succeed as it is */
    SW_CONFIG = 4,     /* the connector's settings are wrong */
    SW_AUTH = 5,       /* credentials refused */
    SW_SCHEMA = 6,     /* data does not fit the contract or the file format */
    SW_INTERNAL = 7,   /* a bug in the connector */
    SW_CANCELLED = 8   /* the run was cancelled; stop quietly */
} sw_status;

/* Filled by a hook that returns a status other than SW_OK. The kernel
 * allocates it, zeroes it and sets struct_size; the connector writes into the
 * fixed buffers (truncating, always NUL-terminated). */
typedef struct sw_error {
    uint32_t struct_size;
    uint32_t retry_after_ms;  /* SW_THROTTLED only; 0 = unknown */
    char category[64];        /* short stable word for reports: "csv", "http_429" */
    char message[1024];       /* for the operator: what, where, what to do */
} sw_error;

/* ---- manifest ------------------------------------------------------------ */

#define SW_CAP_SOURCE 0x1u      /* implements extract */
#define SW_CAP_TARGET 0x2u      /* implements read_state and apply */
#define SW_CAP_CUSTOM_DIFF 0x4u /* implements diff */
#define SW_CAP_STATE_TOKEN 0x8u /* 1.1: implements state_token */
/* 1.2: a target whose accepted changes become durable only at commit (a file
 * delivery, a transaction). Without it, a change the target accepted in apply
 * is durable when apply returns, and a resumed run never sends it again. */
#define SW_CAP_TRANSACTIONAL 0x10u
/* 1.4: a target whose system assigns its own ids to records (a SCIM id, an
 * LDAP entryUUID). It reports them from apply with host->target_id, and the
 * kernel hands them back in sw_change_batch.target_ids on later runs. */
#define SW_CAP_TARGET_IDS 0x20u

typedef enum sw_thread_safety {
    SW_THREAD_INSTANCE = 0, /* one thread at a time per instance (default) */
    SW_THREAD_SAFE = 1,     /* an instance may be called from many threads */
    SW_THREAD_PROCESS = 2   /* at most one instance per process */
} sw_thread_safety;

typedef struct sw_manifest {
    uint32_t struct_size;
    sw_str name;          /* [a-z0-9-]+, unique among connectors */
    sw_str version;       /* semver release: "1.2.0" */
    sw_str build_id;      /* unique per build of that release: a hash or a stamp */
    sw_str description;   /* one line for `connectors list` */
    uint32_t capabilities;   /* SW_CAP_* */
    uint32_t thread_safety;  /* sw_thread_safety */
    /* 1.1: a JSON Schema (draft 7) for the settings object, as JSON text.
     * The kernel validates the job's settings against it before create and
     * names the JSON path of every violation. Empty: no schema. */
    sw_str settings_schema;
} sw_manifest;

/* ---- data contract -------------------------------------------------------- */

typedef enum sw_field_type {
    SW_TYPE_STRING = 0,
    SW_TYPE_INT = 1,      /* decimal integer */
    SW_TYPE_BOOL = 2,     /* "true" or "false" */
    SW_TYPE_DATE = 3,     /* YYYY-MM-DD */
    SW_TYPE_DATETIME = 4, /* ISO 8601 */
    SW_TYPE_LIST = 5,     /* comma-separated values */
    SW_TYPE_ITEMS = 6     /* 1.4: a list whose items may hold any text, commas
                             included: the items joined by SW_ITEM_SEP. No
                             item is empty; no items is the empty value. */
} sw_field_type;

/* 1.4: what separates the items of an SW_TYPE_ITEMS value: the ASCII unit
 * separator, which no text value may otherwise contain. */
#define SW_ITEM_SEP '\x1f'

#define SW_FIELD_REQUIRED 0x1u /* never empty in an emitted record */
/* 1.4, string fields only: the field tells the empty string from absent
 * (null). A value whose ptr is NULL is absent; a non-NULL ptr with len 0 is
 * the empty string. Without the flag both are absent, as before 1.4. The
 * kernel hands values back the same way: absent is always {NULL, 0}. */
#define SW_FIELD_EMPTY_IS_VALUE 0x2u

typedef struct sw_field_def {
    uint32_t struct_size;
    sw_str name;
    uint32_t type;   /* sw_field_type */
    uint32_t flags;  /* SW_FIELD_* */
} sw_field_def;

typedef struct sw_entity_def {
    uint32_t struct_size;
    sw_str name;              /* "users", "enrollments" */
    sw_str key_name;          /* what the key is called: "sourcedId" */
    const sw_field_def* fields;
    size_t field_count;
} sw_entity_def;

/* 1.3: the values an enumerated field may hold. The kernel compares them
 * exactly, case included, and reports any other value as an error finding
 * that holds the run (the record is left as the target has it). */
typedef struct sw_enum_def {
    uint32_t struct_size;
    sw_str entity;
    sw_str field;               /* a field of that entity; a list field's items are checked one by one */
    const sw_str* values;
    size_t value_count;
    sw_str extension_prefix;    /* values that start with it are allowed too ("ext:"); empty: none */
} sw_enum_def;

/* 1.4: how the kernel's diff compares a target field's desired value with
 * the value the target holds. */
typedef enum sw_compare {
    SW_COMPARE_EXACT = 0,            /* byte for byte (the default) */
    SW_COMPARE_CASE_INSENSITIVE = 1, /* Unicode case folding: LDAP names, SCIM userName */
    SW_COMPARE_WRITE_ONLY = 2,       /* sent with a create, never compared: a password */
    SW_COMPARE_IGNORE = 3            /* never compared, never sent: set by the server */
} sw_compare;

/* 1.4: the items of a list (SW_TYPE_LIST or SW_TYPE_ITEMS) compare as a set:
 * their order and repeats do not count. Group members, e-mail lists. */
#define SW_POLICY_UNORDERED 0x1u
/* 1.4: the field that identifies an unowned record to adopt (SCIM userName,
 * LDAP uid), compared under the field's policy. At most one per entity. */
#define SW_POLICY_MATCH 0x2u

/* 1.4: a compare policy for one field. Fields without one are compared
 * exactly. */
typedef struct sw_field_policy {
    uint32_t struct_size;
    sw_str entity;
    sw_str field;
    uint32_t compare; /* sw_compare */
    uint32_t flags;   /* SW_POLICY_* */
} sw_field_policy;

/* 1.4: `entity` refers to records of `depends_on` (groups list their user
 * members). The kernel applies creates and updates of depends_on first and
 * deletes of depends_on last. Dependencies may not form a cycle. */
typedef struct sw_dependency {
    uint32_t struct_size;
    sw_str entity;
    sw_str depends_on;
} sw_dependency;

typedef struct sw_contract {
    uint32_t struct_size;
    const sw_entity_def* entities;
    size_t entity_count;
    /* 1.3: may be NULL. The kernel steps through the array by each
     * element's struct_size. */
    const sw_enum_def* enums;
    size_t enum_count;
    /* 1.4: may be NULL; stepped through by each element's struct_size. */
    const sw_field_policy* policies;
    size_t policy_count;
    const sw_dependency* dependencies;
    size_t dependency_count;
} sw_contract;

/* ---- records and changes --------------------------------------------------- */

typedef enum sw_record_state {
    SW_RECORD_ACTIVE = 0,
    SW_RECORD_TOBEDELETED = 1, /* the source says: remove it downstream */
    /* 1.4, from read_state only: the target holds this record, but it is no
     * source record's (an account made by hand). Its key is the target's own
     * id for it. The kernel never updates or deletes it; a create whose
     * match field (SW_POLICY_MATCH) equals its value becomes an adoption. */
    SW_RECORD_UNOWNED = 2
} sw_record_state;

/* One record: its key and one value per contract field, in contract order.
 * An empty value means "no value". */
typedef struct sw_record {
    sw_str key;
    const sw_str* values;
    size_t value_count;
    uint32_t state; /* sw_record_state */
} sw_record;

/* An entity for which extract emits no batch at all is one the source says
 * nothing about: nothing of it is deleted. To say "this entity is now
 * empty", emit one empty bulk batch. */
typedef enum sw_batch_mode {
    SW_MODE_BULK = 0,  /* the source sends the whole entity: absent means gone */
    SW_MODE_DELTA = 1  /* only changes: absent means unchanged */
} sw_batch_mode;

typedef struct sw_batch {
    uint32_t struct_size;
    sw_str entity;
    uint32_t mode; /* sw_batch_mode; all batches of one entity in a run agree,
                      a batch that disagrees is a connector defect */
    const sw_record* records;
    size_t record_count;
} sw_batch;

typedef enum sw_change_kind {
    SW_CHANGE_CREATE = 0,
    SW_CHANGE_UPDATE = 1,
    SW_CHANGE_DELETE = 2,
    /* 1.4: take over an unowned record (SW_RECORD_UNOWNED) for this key: its
     * id is in sw_change_batch.target_ids, values hold the desired record
     * and changed_fields what differs from the record as it is. Mark it as
     * the key's (SCIM externalId, LDAP employeeNumber) and update it. Only
     * a target that reported unowned records receives adoptions. */
    SW_CHANGE_ADOPT = 3
} sw_change_kind;

/* One planned change. For create and update, values holds the whole desired
 * record (contract order) and changed_fields the indexes that differ (all of
 * them for create). For delete, values holds the last known record. */
typedef struct sw_change {
    /* A content id: a hash of job, entity, key, kind and desired values. The
     * same change planned twice has the same id, so a target may use it to
     * drop a change it has already applied. */
    sw_str id;
    uint32_t kind; /* sw_change_kind */
    sw_str key;
    const sw_str* values;
    size_t value_count;
    const uint32_t* changed_fields;
    size_t changed_count;
} sw_change;

typedef struct sw_change_batch {
    uint32_t struct_size;
    sw_str entity;
    const sw_change* changes;
    size_t change_count;
    /* 1.2: 1 the first time these changes are sent; higher when the kernel
     * sends them again (a retry, or a resumed run re-sending the batch that
     * was in flight). With the change ids, a target can drop what it has
     * already applied. Read it only when struct_size covers it. */
    uint32_t attempt;
    /* 1.4, for a target with SW_CAP_TARGET_IDS (NULL otherwise): per change,
     * the id the target reported for this key on an earlier run (see the
     * target_id host slot), or an empty string when it reported none. */
    const sw_str* target_ids;
} sw_change_batch;

/* A problem in the input that is not fatal to the connector. Severity error
 * blocks the run when it concerns an entity the job uses. */
typedef enum sw_severity {
    SW_SEVERITY_INFO = 0,
    SW_SEVERITY_WARNING = 1,
    SW_SEVERITY_ERROR = 2
} sw_severity;

typedef struct sw_finding {
    uint32_t struct_size;
    uint32_t severity; /* sw_severity */
    sw_str code;       /* stable word: "dangling_reference", "bad_date" */
    sw_str entity;     /* may be empty */
    sw_str file;       /* may be empty */
    uint64_t line;     /* 1-based; 0 = not known */
    uint64_t column;   /* 1-based; 0 = not known */
    sw_str key;        /* record key, may be empty */
    sw_str message;
} sw_finding;

/* 1.3: what a source read for one entity: where, and the columns (fields) it
 * found there, in order and as the source named them, known or not. The
 * kernel compares it with the job's last good run and reports a column
 * that appeared or vanished. */
typedef struct sw_layout {
    uint32_t struct_size;
    sw_str entity;
    sw_str file;              /* a file name, a URL, a table; may be empty */
    const sw_str* columns;
    size_t column_count;
} sw_layout;

/* ---- the host API: what the kernel offers --------------------------------- */

typedef struct sw_host_ctx sw_host_ctx; /* opaque, owned by the kernel */

typedef enum sw_log_level {
    SW_LOG_DEBUG = 0,
    SW_LOG_INFO = 1,
    SW_LOG_WARN = 2,
    SW_LOG_ERROR = 3
} sw_log_level;

/* Every slot may be NULL in a later minor's host ("not offered"); the ones
 * below are all offered by a 1.0 kernel. The table and ctx stay valid from
 * create until destroy returns.
 * Thread: call them from the thread that is running the hook. */
typedef struct sw_host_api {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;

    void (*log)(sw_host_ctx* ctx, uint32_t level, sw_str message);

    /* Records from extract (source) or read_state (target). SW_CANCELLED
     * means stop emitting and return SW_CANCELLED. */
    sw_status (*emit)(sw_host_ctx* ctx, const sw_batch* batch);

    void (*report_finding)(sw_host_ctx* ctx, const sw_finding* finding);

    /* During apply: the outcome of change `index` of the current batch.
     * A change with no reported result counts as applied when apply
     * returns SW_OK, and as failed with apply's status otherwise. */
    void (*change_result)(sw_host_ctx* ctx, size_t index, sw_status status,
                          sw_str category, sw_str message);

    /* Opaque progress token, stored by the kernel with the run. */
    sw_status (*checkpoint_save)(sw_host_ctx* ctx, sw_str token);
    /* Ownership: *out is valid until the next call on this ctx. */
    sw_status (*checkpoint_load)(sw_host_ctx* ctx, sw_str* out);

    int (*is_cancelled)(sw_host_ctx* ctx);

    /* The connector's settings, by JSON pointer ("/path", "/files/0/name").
     * Strings come back unquoted; other values as JSON text.
     * Ownership: *out is valid until destroy. SW_CONFIG if absent. */
    sw_status (*config_get)(sw_host_ctx* ctx, sw_str json_pointer, sw_str* out);

    /* From a diff hook only: the connector's own plan. */
    sw_status (*emit_changes)(sw_host_ctx* ctx, const sw_change_batch* batch);

    /* ---- 1.1 ---- */

    /* From read_state or the state_token hook: an opaque token for the state
     * the target holds now (a digest of files, a version, a change counter).
     * The kernel stores it with the plan and, before applying a plan, asks
     * for the current one; a plan whose target state changed is refused. */
    void (*state_token)(sw_host_ctx* ctx, sw_str token);

    /* ---- 1.2 ---- */

    /* Takes `permits` requests' worth from the job's rate limit for this
     * target, waiting as long as the limit requires. Call it before each
     * request to the vendor. SW_CANCELLED: the run is stopping; return.
     * A connector that never calls it is paced by the kernel, one permit per
     * apply call. */
    sw_status (*acquire)(sw_host_ctx* ctx, uint32_t permits);

    /* ---- 1.3 ---- */

    /* From extract: the layout of what the source read for an entity, once
     * per entity (per file, when an entity spans several). */
    void (*report_layout)(sw_host_ctx* ctx, const sw_layout* layout);

    /* ---- 1.4 ---- */

    /* From apply, for a target with SW_CAP_TARGET_IDS: change `index` of the
     * current batch is the record the target knows by `id` (the id it
     * assigned on create, or the id of an account it adopted). The kernel
     * keeps a key -> id map per target and entity, stored with the change's
     * result, and hands the id back in sw_change_batch.target_ids whenever
     * it sends a change of that key again. An empty id forgets it; a
     * successful delete forgets it too. */
    void (*target_id)(sw_host_ctx* ctx, size_t index, sw_str id);

    /* From any hook, after a request to the vendor met a transient answer
     * (a 429, a 503, a lost connection) that the hook wants to send again
     * itself: a page of a listing that cannot be restarted elsewhere.
     * `attempt` is how many times that request was sent so far (1 after the
     * first); `retry_after_ms` what the vendor asked for (0: nothing). The
     * kernel applies the job's retry policy: it waits the backoff (never
     * less than retry_after_ms) and returns SW_OK to try again, or returns
     * SW_RETRYABLE when the policy gives up (attempts used up), or
     * SW_CANCELLED. It counts the waits in the run's summary. Changes in
     * apply need not use it: report them throttled and the kernel resends. */
    sw_status (*retry_wait)(sw_host_ctx* ctx, uint32_t attempt, uint32_t retry_after_ms);
} sw_host_api;

/* ---- hooks: what the connector implements -------------------------------- */

typedef struct sw_create_args {
    uint32_t struct_size;
    sw_str settings_json; /* the job's settings object for this connector */
    sw_str job_name;
    sw_str base_dir;      /* relative paths in settings are relative to this */
} sw_create_args;

typedef struct sw_hooks {
    uint32_t struct_size;

    /* Required. *out_instance is handed to every other hook. */
    sw_status (*create)(const sw_host_api* host, sw_host_ctx* ctx,
                        const sw_create_args* args, void** out_instance,
                        sw_error* err);
    /* Required. Never fails. */
    void (*destroy)(void* instance);

    /* Required. Ownership: *out stays valid until destroy. */
    sw_status (*contract)(void* instance, const sw_contract** out, sw_error* err);

    /* Source. Emit every record of the requested entities with host->emit. */
    sw_status (*extract)(void* instance, const sw_str* entities,
                         size_t entity_count, sw_error* err);

    /* Target. Emit the records the target holds now, with host->emit. */
    sw_status (*read_state)(void* instance, const sw_str* entities,
                            size_t entity_count, sw_error* err);

    /* Optional (SW_CAP_CUSTOM_DIFF). Called once per batch of desired
     * records, then once with desired == NULL; emits the plan with
     * host->emit_changes. Without it the kernel's keyed diff is used. */
    sw_status (*diff)(void* instance, const sw_batch* desired, sw_error* err);

    /* Target. Apply one batch; report per-change results with
     * host->change_result. */
    sw_status (*apply)(void* instance, const sw_change_batch* batch, sw_error* err);

    /* Optional. After the last batch was acknowledged: make it durable
     * (write files, commit a transaction). A target that reports state tokens
     * must refuse here, with SW_PERMANENT and category "state_changed", when
     * its state is no longer the one its last token described: it never
     * merges a plan onto a state the plan was not made against. */
    sw_status (*commit)(void* instance, sw_error* err);

    /* ---- 1.1 ---- */

    /* Optional (SW_CAP_STATE_TOKEN). Report the current state token of these
     * entities with host->state_token, without emitting records. The kernel
     * calls it before applying a stored plan. */
    sw_status (*state_token)(void* instance, const sw_str* entities,
                             size_t entity_count, sw_error* err);

    /* ---- 1.2 ---- */

    /* Optional. The run ends without commit (cancelled, failed, stopped by a
     * deadline): drop whatever apply accepted and was not made durable. */
    void (*abort)(void* instance);

    /* Optional, targets. Names the system this instance writes, such as the
     * real path of a folder or a base URL, so that two jobs writing one
     * system never apply at the same time. Without it, the kernel uses the
     * connector's name and settings. Ownership: *out stays valid until
     * destroy. */
    sw_status (*system_id)(void* instance, sw_str* out, sw_error* err);
} sw_hooks;

/* What the entry symbol returns. abi_major and abi_minor stay at these
 * offsets forever, so any kernel can read them. */
typedef struct sw_connector {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    const sw_manifest* manifest;
    const sw_hooks* hooks;
} sw_connector;

typedef const sw_connector* (*sw_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* SYNCWARDEN_CONNECTOR_H */
