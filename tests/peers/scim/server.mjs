// A SCIM 2.0 server for Syncwarden's tests and benchmarks: scimmy for the
// protocol (RFC 7643/7644: resources, filters, PATCH, Bulk, paging,
// ServiceProviderConfig) and scimmy-routers for its HTTP endpoints, with a
// persistent store and an optional front layer that misbehaves the way
// vendors do.
//
//   node server.mjs --store FILE [--token T] [--throttle PERCENT]
//                   [--retry-after SECONDS] [--etag] [--no-patch]
//                   [--max-results N] [--seed N] [--tls CERT:KEY]
//                   [--oauth2 CLIENT_ID:CLIENT_SECRET [--token-uses N]]
//                   [--no-bulk] [--bulk-max N] [--bulk-refused]
//                   [--bulk-payload-limit BYTES] [--no-filter]
//
// It listens on 127.0.0.1, on a port the system picks, and prints
// "listening PORT" on stdout once it answers. The store is a journal of
// JSON lines (one per write), replayed at start, so the server's state
// outlives it; a test reads it back over the protocol, never from the file.
// Front layer:
//   --throttle P   answers P% of requests (deterministic, by --seed) with
//                  429 and Retry-After before they reach SCIM
//   --etag         sends each resource's version as ETag and meta.version,
//                  and answers 412 to a PUT, PATCH or DELETE whose If-Match
//                  names another version
//   --stale-once   with --etag: before the first PUT or PATCH of each
//                  resource, another writer changes it (its version moves
//                  on), so the client's If-Match is stale once
//   --tls C:K      HTTPS with this certificate and key (PEM files)
//   --oauth2 I:S   bearer tokens come from POST /oauth/token (OAuth 2.0
//                  client credentials, RFC 6749 4.4; the client's id and
//                  secret in the form or as Basic auth); --token-uses N
//                  makes each token expire after N requests, so clients
//                  must fetch another on a 401
//   --no-bulk      the ServiceProviderConfig says bulk is not supported
//   --bulk-max N   bulk.maxOperations (1000)
//   --no-filter    the ServiceProviderConfig says filter is not supported,
//                  and a request with ?filter= is answered 400 invalidFilter
//   --bulk-refused advertises bulk but answers POST /Bulk with 501
//   --bulk-payload-limit B
//                  answers 413 to a Bulk request larger than B bytes, though
//                  the ServiceProviderConfig says 4 MiB
// With --etag, the operations of a Bulk request are held to their "version"
// (and --stale-once) the same way: one with a stale version gets its own 412
// in the BulkResponse, the others are applied.
// GET /_stats answers {"requests": N, "throttled": N, "preconditionFailed": N,
// "tokens": N, "bulk": N, "bulkOperations": N, "bulkTooLarge": N}
// ("bulk" counts the Bulk requests that reached SCIM, and "bulkOperations"
// their operations).
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import https from "node:https";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
    const i = args.indexOf(name);
    return i < 0 ? fallback : args[i + 1];
};
const flag = (name) => args.includes(name);
const storeFile = opt("--store");
if (!storeFile) {
    console.error("usage: server.mjs --store FILE [--token T] [--throttle PERCENT] [--etag] ...");
    process.exit(2);
}
const token = opt("--token", "");
const throttlePercent = Number(opt("--throttle", "0"));
const retryAfter = opt("--retry-after", "1");
const etags = flag("--etag");
const staleOnce = flag("--stale-once");
const touched = new Set();  // resources another writer has changed (--stale-once)
const maxResults = Number(opt("--max-results", "200"));
const tls = opt("--tls", "");
const oauth = opt("--oauth2", "");
const tokenUses = Number(opt("--token-uses", "0"));
const issued = new Map();  // OAuth token -> requests it may still make
let seed = Number(opt("--seed", "1")) >>> 0;

// ---- the store -------------------------------------------------------------
const data = { Users: new Map(), Groups: new Map() };
const byUserName = new Map();   // lowercased userName -> id (userName is unique, case-insensitively)
const byExternalId = { Users: new Map(), Groups: new Map() };
function index(type, res, add) {
    if (type === "Users" && res.userName) {
        if (add) byUserName.set(res.userName.toLowerCase(), res.id);
        else byUserName.delete(res.userName.toLowerCase());
    }
    if (res.externalId) {
        if (add) byExternalId[type].set(res.externalId, res.id);
        else byExternalId[type].delete(res.externalId);
    }
}
function put(type, res) {
    const old = data[type].get(res.id);
    if (old) index(type, old, false);
    data[type].set(res.id, res);
    index(type, res, true);
}
function remove(type, id) {
    const old = data[type].get(id);
    if (old) index(type, old, false);
    data[type].delete(id);
    if (type === "Users")
        for (const g of data.Groups.values()) if (g.members) g.members = g.members.filter((m) => m.value !== id);
}
if (fs.existsSync(storeFile)) {
    for (const line of fs.readFileSync(storeFile, "utf8").split("\n")) {
        if (!line) continue;
        const e = JSON.parse(line);
        if (e.op === "put") put(e.type, e.res);
        else remove(e.type, e.id);
    }
}
const journal = fs.openSync(storeFile, "a");
const record = (entry) => fs.writeSync(journal, JSON.stringify(entry) + "\n");

// ---- SCIM resources ---------------------------------------------------------
SCIMMY.Config.set({
    filter: { supported: true, maxResults },
    bulk: { maxOperations: Number(opt("--bulk-max", "1000")), maxPayloadSize: 4194304 },
    sort: true,
    etag: etags,
    changePassword: false,
});

const plain = (instance) => JSON.parse(JSON.stringify(instance));
const now = () => new Date().toISOString();

// Filters on an indexed attribute with "eq" answer from the index; anything
// else is matched by scimmy against every resource.
function egressFor(type) {
    return (resource) => {
        if (resource.id) {
            const r = data[type].get(resource.id);
            if (!r) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            return r;
        }
        const f = resource.filter;
        if (f && f.length === 1) {
            const entries = Object.entries(f[0]);
            if (entries.length === 1 && Array.isArray(entries[0][1]) && entries[0][1][0] === "eq") {
                const [attr, [, value]] = entries[0];
                const key = attr.toLowerCase();
                if (key === "externalid" || (key === "username" && type === "Users")) {
                    const id = key === "externalid" ? byExternalId[type].get(String(value))
                                                    : byUserName.get(String(value).toLowerCase());
                    return id ? [data[type].get(id)] : [];
                }
            }
        }
        const all = [...data[type].values()];
        if (f) return f.match(all);
        // scimmy makes a schema instance of every resource it is handed
        // before it slices out the page: hand it only the page, in a sparse
        // array as long as the whole list (scimmy's documented way), so a
        // page costs its own size and not the store's.
        const { startIndex = 1, count, sortBy } = resource.constraints ?? {};
        if (sortBy === undefined && count !== undefined && (startIndex === 1 || startIndex > count)) {
            const page = new Array(all.length);
            for (let i = startIndex - 1; i < Math.min(all.length, startIndex - 1 + count); ++i) page[i] = all[i];
            return page;
        }
        return all;
    };
}

function ingressFor(type) {
    return (resource, instance) => {
        const incoming = plain(instance);
        delete incoming.meta;
        delete incoming.schemas;
        if (type === "Users") {
            if (!incoming.userName) throw new SCIMMY.Types.Error(400, "invalidValue", "userName is required");
            const holder = byUserName.get(incoming.userName.toLowerCase());
            if (holder && holder !== resource.id)
                throw new SCIMMY.Types.Error(409, "uniqueness", `userName '${incoming.userName}' is already taken`);
        } else if (incoming.members) {
            for (const m of incoming.members)
                if (!data.Users.has(m.value) && !data.Groups.has(m.value))
                    throw new SCIMMY.Types.Error(400, "invalidValue", `member '${m.value}' does not exist`);
        }
        if (incoming.externalId) {
            const holder = byExternalId[type].get(incoming.externalId);
            if (holder && holder !== resource.id)
                throw new SCIMMY.Types.Error(409, "uniqueness", `externalId '${incoming.externalId}' is already taken`);
        }
        const old = resource.id ? data[type].get(resource.id) : undefined;
        if (resource.id && !old) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        const version = old ? Number(old.meta.version.replace(/\D/g, "")) + 1 : 1;
        const res = {
            ...incoming,
            id: old ? old.id : randomUUID(),
            meta: {
                resourceType: type === "Users" ? "User" : "Group",
                created: old ? old.meta.created : now(),
                lastModified: now(),
                version: `W/"${version}"`,
            },
        };
        put(type, res);
        record({ op: "put", type, res });
        return res;
    };
}

function degressFor(type) {
    return (resource) => {
        if (!data[type].has(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        remove(type, resource.id);
        record({ op: "del", type, id: resource.id });
    };
}

SCIMMY.Resources.declare(SCIMMY.Resources.User)
    .ingress(ingressFor("Users")).egress(egressFor("Users")).degress(degressFor("Users"));
SCIMMY.Resources.declare(SCIMMY.Resources.Group)
    .ingress(ingressFor("Groups")).egress(egressFor("Groups")).degress(degressFor("Groups"));

// ---- HTTP --------------------------------------------------------------------
const app = express();
const stats = { requests: 0, throttled: 0, preconditionFailed: 0, tokens: 0, bulk: 0, bulkOperations: 0, bulkTooLarge: 0 };
app.get("/_stats", (req, res) => res.json(stats));
if (oauth) {
    const [clientId, clientSecret] = oauth.split(":");
    app.post("/oauth/token", express.urlencoded({ extended: false }), (req, res) => {
        let id = req.body?.client_id, secret = req.body?.client_secret;
        const basic = req.get("Authorization") ?? "";
        if (basic.startsWith("Basic ")) [id, secret] = Buffer.from(basic.slice(6), "base64").toString().split(":");
        if (req.body?.grant_type !== "client_credentials")
            return res.status(400).json({ error: "unsupported_grant_type" });
        if (id !== clientId || secret !== clientSecret) return res.status(401).json({ error: "invalid_client" });
        const t = `oauth-${++stats.tokens}-${randomUUID()}`;
        issued.set(t, tokenUses > 0 ? tokenUses : Infinity);
        res.json({ access_token: t, token_type: "Bearer", expires_in: 3600 });
    });
}

// xorshift32: the same seed throttles the same requests.
const random = () => {
    seed ^= seed << 13; seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5; seed >>>= 0;
    return seed / 4294967296;
};
// --stale-once: another writer changes the resource before its first write.
function touch(type, id) {
    if (touched.has(id) || !data[type].has(id)) return;
    touched.add(id);
    const r = data[type].get(id);
    const bumped = { ...r, meta: { ...r.meta, lastModified: now(),
                                   version: `W/"${Number(r.meta.version.replace(/\D/g, "")) + 1}"` } };
    put(type, bumped);
    record({ op: "put", type, res: bumped });
}
// The SCIM error for a write whose If-Match (or bulk "version") is not the
// resource's current version; undefined when it is.
function stale(type, id, version) {
    const current = data[type].get(id);
    if (!current || version === "*" || version === current.meta.version) return undefined;
    stats.preconditionFailed++;
    return { schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "412",
             detail: `version ${version} is not the current version ${current.meta.version}` };
}
// A Bulk request's operations with a stale "version" are taken out before
// scimmy sees the request, and their 412s put back into the BulkResponse at
// their places. True when every operation failed and the answer is sent.
function holdBulkToVersions(req, res) {
    const ops = Array.isArray(req.body?.Operations) ? req.body.Operations : [];
    const failed = new Map();
    ops.forEach((op, i) => {
        const method = String(op?.method ?? "").toUpperCase();
        const m = typeof op?.path === "string" && op.path.match(/^\/(Users|Groups)\/([^/]+)$/);
        if (!m || !["PUT", "PATCH", "DELETE"].includes(method)) return;
        if (staleOnce && method !== "DELETE") touch(m[1], m[2]);
        const error = op.version ? stale(m[1], m[2], op.version) : undefined;
        if (error) failed.set(i, { method: op.method, location: `${req.baseUrl}${op.path}`, status: "412", response: error });
    });
    if (!failed.size) return false;
    const send = res.send.bind(res);
    const splice = (results) => {
        const out = [];
        let next = 0;
        for (let i = 0; i < ops.length; ++i) out.push(failed.get(i) ?? results[next++]);
        return out.filter((r) => r);
    };
    if (failed.size === ops.length) {
        res.status(200).type("application/scim+json").send(JSON.stringify({
            schemas: ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"], Operations: splice([]) }));
        return true;
    }
    req.body.Operations = ops.filter((_, i) => !failed.has(i));
    res.send = (body) => {
        if (typeof body !== "string") return send(body);  // express comes back with the JSON text
        try {
            const parsed = JSON.parse(body);
            if (Array.isArray(parsed?.Operations)) parsed.Operations = splice(parsed.Operations);
            return send(JSON.stringify(parsed));
        } catch {
            return send(body);
        }
    };
    return false;
}
const bulkPayloadLimit = Number(opt("--bulk-payload-limit", "0"));
app.use("/scim/Bulk", (req, res, next) => {
    const length = Number(req.get("Content-Length") ?? "0");
    if (bulkPayloadLimit > 0 && length > bulkPayloadLimit) {
        stats.bulkTooLarge++;
        res.status(413).type("application/scim+json").send(JSON.stringify({
            schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "413",
            detail: `${length} bytes is more than this server takes (${bulkPayloadLimit})` }));
        return;
    }
    if (flag("--bulk-refused")) {
        res.status(501).type("application/scim+json").send(JSON.stringify({
            schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "501", detail: "Bulk is not implemented" }));
        return;
    }
    next();
});
app.use("/scim/Bulk", express.json({ type: ["application/scim+json", "application/json"], limit: "8mb" }));
app.use("/scim", (req, res, next) => {
    stats.requests++;
    if (req.method === "POST" && req.path === "/Bulk") {
        stats.bulk++;
        stats.bulkOperations += Array.isArray(req.body?.Operations) ? req.body.Operations.length : 0;
    }
    // Express 5 parses req.query anew on every read, so the routers' cast of
    // startIndex and count to numbers would be lost (and paging ignored):
    // parse it once into a plain, writable object.
    Object.defineProperty(req, "query", { value: { ...req.query }, writable: true, configurable: true });
    if (flag("--no-filter") && req.query.filter !== undefined) {
        res.status(400).type("application/scim+json").send(JSON.stringify({
            schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "400", scimType: "invalidFilter",
            detail: "this server does not filter" }));
        return;
    }
    if (throttlePercent > 0 && random() * 100 < throttlePercent) {
        stats.throttled++;
        res.set("Retry-After", retryAfter).status(429).type("application/scim+json").send(JSON.stringify({
            schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "429", detail: "Too many requests",
        }));
        return;
    }
    if (!etags) return next();
    // If-Match on a single resource: only its current version passes.
    const m = req.path.match(/^\/(Users|Groups)\/([^/]+)$/);
    const ifMatch = req.get("If-Match");
    if (m && staleOnce && ["PUT", "PATCH"].includes(req.method)) touch(m[1], m[2]);
    if (m && ifMatch && ["PUT", "PATCH", "DELETE"].includes(req.method)) {
        const failed = stale(m[1], m[2], ifMatch);
        if (failed) {
            res.status(412).type("application/scim+json").send(JSON.stringify(failed));
            return;
        }
    }
    if (req.method === "POST" && req.path === "/Bulk" && holdBulkToVersions(req, res)) return;
    // The version of a single resource answered goes out as its ETag.
    const send = res.send.bind(res);
    res.send = (body) => {
        try {
            const parsed = typeof body === "string" ? JSON.parse(body) : undefined;
            if (parsed?.meta?.version) res.set("ETag", parsed.meta.version);
        } catch { /* not JSON: no ETag */ }
        return send(body);
    };
    next();
});
const routers = new SCIMMYRouters({
    type: "bearer",
    docUri: "http://127.0.0.1/docs",
    handler: (req) => {
        const auth = req.get("Authorization") ?? "";
        if (oauth) {
            const t = auth.startsWith("Bearer ") ? auth.slice(7) : "";
            const left = issued.get(t) ?? 0;
            if (left <= 0) throw new Error("expired, bad or missing OAuth token");
            issued.set(t, left - 1);
            return "syncwarden";
        }
        if (token && auth !== `Bearer ${token}`) throw new Error("bad or missing bearer token");
        return "syncwarden";
    },
});
// The routers switch patch, filter, sort and bulk on when they are made:
// what the flags turn off is turned off after.
SCIMMY.Config.set({ patch: !flag("--no-patch"), bulk: !flag("--no-bulk"), filter: !flag("--no-filter") });
app.use("/scim", routers);

const [certFile, keyFile] = tls.split(":");
const server = (tls ? https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, app) : app)
    .listen(0, "127.0.0.1", () => {
        process.stdout.write(`listening ${server.address().port}\n`);
    });
server.keepAliveTimeout = 60000;
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
