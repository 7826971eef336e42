// The viewer websocket client shared by the viewer page and the host console.
//
//   const client = new LiveClient({ room: "demo", token });
//   client.on("welcome", ({ frame, recovered }) => ...);
//   client.on("batch", ({ frame }) => ...);          // events + changed state
//   client.on("status", ({ status, reason }) => ...); // connecting | open | reconnecting | failed | closed
//   client.connect();
//   const data = await client.request("buy", { sale, qty: 1, key });  // rejects with LiveError
//
// It keeps the last offset and the room epoch, and after a drop (or a gap between
// batches: a batch's `prev` must equal the last offset) it reconnects with
// `since`/`epoch` so the server replays what was missed. It learns the server clock
// offset from `welcome.server_ms` and from `pong` (the sample with the smallest
// round trip wins), so countdowns agree across screens: `client.serverNow()`.

import * as msgpack from "./msgpack.js";

export const SUBPROTOCOL_JSON = "lc1.json";
export const SUBPROTOCOL_MSGPACK = "lc1.msgpack";

// Close codes after which reconnecting cannot help (DESIGN.md, close codes).
const FATAL_CLOSES = {
  4401: "your token is invalid or expired",
  4403: "you are banned from this room",
  4404: "this room does not exist",
};

export class LiveError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.code = code;
    this.extra = extra;
  }
}

export class LiveClient {
  constructor({ room, token = null, codec = "json", origin = location.origin, pingMs = 15000, requestTimeoutMs = 8000 } = {}) {
    this.room = room;
    this.token = token;
    this.binary = codec === "msgpack";
    this.wsOrigin = origin.replace(/^http/, "ws");
    this.pingMs = pingMs;
    this.requestTimeoutMs = requestTimeoutMs;

    this.status = "idle";
    this.user = null;
    this.epoch = null;
    this.offset = null;
    this.state = {};
    this.clockOffset = 0; // server_ms - Date.now()
    this.bestRtt = Infinity;
    this.rtt = null;
    this.reconnects = 0;

    this._ws = null;
    this._nextId = 1;
    this._pending = new Map();
    this._handlers = new Map();
    this._attempt = 0;
    this._timers = new Set();
    this._pingTimer = null;
    this._lastFrameAt = 0;
    this._wanted = false;
  }

  // -- events ---------------------------------------------------------------------
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this._handlers.get(type).delete(fn);
  }

  _emit(type, detail) {
    for (const fn of this._handlers.get(type) || []) {
      try {
        fn(detail);
      } catch (err) {
        console.error(`liveclient: ${type} handler failed`, err);
      }
    }
  }

  _setStatus(status, reason = "") {
    if (this.status === status && !reason) return;
    this.status = status;
    this._emit("status", { status, reason });
  }

  // -- clock ----------------------------------------------------------------------
  serverNow() {
    return Date.now() + this.clockOffset;
  }

  _clockSample(serverMs, rtt) {
    // A sample is only as good as its round trip; keep the best one, but let it age
    // a little so a drifting clock is eventually followed.
    if (rtt <= this.bestRtt) {
      this.bestRtt = rtt;
      this.clockOffset = serverMs + rtt / 2 - Date.now();
    } else {
      this.bestRtt *= 1.05;
    }
  }

  // -- connection -----------------------------------------------------------------
  url() {
    const params = new URLSearchParams();
    if (this.token) params.set("token", this.token);
    if (this.offset && this.epoch) {
      params.set("since", this.offset);
      params.set("epoch", this.epoch);
    }
    const q = params.toString();
    return `${this.wsOrigin}/ws/rooms/${encodeURIComponent(this.room)}${q ? "?" + q : ""}`;
  }

  connect() {
    this._wanted = true;
    this._open();
  }

  close() {
    this._wanted = false;
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    clearInterval(this._pingTimer);
    if (this._ws) this._ws.close(1000);
    this._setStatus("closed");
  }

  /** Drop the socket and come back with since/epoch (used on a detected gap). */
  resync(reason = "resync") {
    if (this._ws) this._ws.close(4000, reason.slice(0, 100));
  }

  _open() {
    if (!this._wanted) return;
    this._setStatus(this.offset ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.url(), [this.binary ? SUBPROTOCOL_MSGPACK : SUBPROTOCOL_JSON]);
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    let welcomed = false;
    ws.onmessage = (msg) => {
      if (ws !== this._ws) return;
      let frame;
      try {
        frame = typeof msg.data === "string" ? JSON.parse(msg.data) : msgpack.decode(msg.data);
      } catch (err) {
        console.error("liveclient: bad frame", err);
        return;
      }
      this._lastFrameAt = Date.now();
      if (frame.t === "welcome") welcomed = true;
      this._onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      this._ws = null;
      clearInterval(this._pingTimer);
      this._failPending("disconnected", "connection lost; try again");
      const fatal = FATAL_CLOSES[ev.code];
      if (fatal) {
        this._wanted = false;
        this._setStatus("failed", fatal);
        return;
      }
      if (!this._wanted) return;
      if (welcomed) this._attempt = 0;
      this._attempt += 1;
      this.reconnects += 1;
      // Back off 0.25 s, 0.5 s, 1 s ... 3 s, with jitter so a restarted server is not stampeded.
      const base = Math.min(3000, 250 * 2 ** Math.min(this._attempt - 1, 4));
      const delay = base / 2 + Math.random() * base / 2;
      this._setStatus("reconnecting", ev.code === 1012 ? "server restarting" : `closed (${ev.code})`);
      const t = setTimeout(() => {
        this._timers.delete(t);
        this._open();
      }, delay);
      this._timers.add(t);
    };
    ws.onerror = () => {}; // onclose follows and handles it
  }

  _startPings() {
    clearInterval(this._pingTimer);
    // A few quick pings to learn the clock, then a slow heartbeat that also notices a dead link.
    [50, 400, 1200].forEach((ms) => {
      const t = setTimeout(() => {
        this._timers.delete(t);
        this.ping();
      }, ms);
      this._timers.add(t);
    });
    this._pingTimer = setInterval(() => {
      if (this._ws && Date.now() - this._lastFrameAt > this.pingMs * 2.5) {
        this._ws.close(4000, "no answer");
        return;
      }
      this.ping();
    }, this.pingMs);
  }

  ping() {
    this._send({ op: "ping", client_ms: Date.now() });
  }

  _send(frame) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(this.binary ? msgpack.encode(frame) : JSON.stringify(frame));
    return true;
  }

  /** Fire and forget (e.g. like): no reply is awaited. */
  send(op, fields = {}) {
    return this._send({ op, ...fields });
  }

  /** Send an op with an id; resolves with reply.data, rejects with LiveError. */
  request(op, fields = {}, timeoutMs = this.requestTimeoutMs) {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      if (!this._send({ op, id, ...fields })) {
        reject(new LiveError("disconnected", "not connected; reconnecting"));
        return;
      }
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new LiveError("timeout", "no answer from the server"));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
    });
  }

  _failPending(code, message) {
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new LiveError(code, message));
    }
    this._pending.clear();
  }

  // -- frames ---------------------------------------------------------------------
  _onFrame(frame) {
    switch (frame.t) {
      case "welcome":
        return this._onWelcome(frame);
      case "batch":
        return this._onBatch(frame);
      case "reply": {
        const pending = this._pending.get(frame.re);
        if (!pending) return;
        this._pending.delete(frame.re);
        clearTimeout(pending.timer);
        if (frame.ok) pending.resolve(frame.data || {});
        else {
          const { code, message, ...extra } = frame.error || {};
          pending.reject(new LiveError(code || "internal", message || "refused", extra));
        }
        return;
      }
      case "pong":
        if (typeof frame.client_ms === "number") {
          const rtt = Math.max(0, Date.now() - frame.client_ms);
          this.rtt = rtt;
          this._clockSample(frame.server_ms, rtt);
          this._emit("clock", { offset: this.clockOffset, rtt });
        }
        return;
      case "error":
        this._emit("error", frame);
        return;
      default:
        return;
    }
  }

  _onWelcome(frame) {
    const resumed = frame.recovered && this.offset !== null && frame.epoch === this.epoch;
    this.user = frame.user;
    this.epoch = frame.epoch;
    // Recovered: the replayed batches follow our own last offset. Otherwise start fresh.
    if (!resumed) this.offset = frame.offset;
    this.state = { ...(frame.state || {}) };
    // The welcome has no round trip: a rough first clock sample until pongs come.
    this.bestRtt = Infinity;
    this._clockSample(frame.server_ms, 1000);
    this._setStatus("open");
    this._startPings();
    this._emit("welcome", { frame, recovered: resumed });
  }

  _onBatch(frame) {
    if (frame.prev !== undefined && this.offset !== null && frame.prev !== this.offset) {
      // Something between our offset and this batch never reached us.
      this.resync(`gap: have ${this.offset}, batch follows ${frame.prev}`);
      return;
    }
    this.offset = frame.offset;
    Object.assign(this.state, frame.state || {});
    this._emit("batch", { frame });
  }
}

// -- helpers shared by the pages --------------------------------------------------

/** Integer cents -> "¥128.00". */
export function yuan(cents) {
  if (typeof cents !== "number" || !Number.isFinite(cents)) return "—";
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(Math.round(cents));
  return `${sign}¥${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/** "12.5" -> 1250 (integer cents), or NaN. */
export function toCents(text) {
  const m = String(text).trim().match(/^(\d+)(?:\.(\d{0,2}))?$/);
  if (!m) return NaN;
  return Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0"));
}

/** Milliseconds -> "mm:ss" (or "h:mm:ss"), never negative. */
export function clock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mmss = `${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  return h ? `${h}:${mmss}` : mmss;
}

/** A random idempotency key for `buy`. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Words for an error code, for people. */
export const ERROR_WORDS = {
  bad_request: "That request was not valid",
  unauthorized: "Sign in first (open the page with your ?token=)",
  forbidden: "You are not allowed to do that",
  muted: "You are muted",
  rate_limited: "Slow down: too many messages",
  not_found: "Not found",
  not_started: "Not started yet",
  ended: "Already ended",
  sold_out: "Sold out",
  limit_reached: "Limit reached: you already bought the most allowed",
  already_claimed: "Already claimed",
  too_long: "Too long",
  blocked_word: "Your message contains a blocked word",
  internal: "Server error; try again",
  disconnected: "Not connected; reconnecting…",
  timeout: "No answer from the server",
};

const DETAILED = new Set(["bad_request", "too_long", "not_found", "forbidden", "internal"]);

export function describeError(err) {
  const words = ERROR_WORDS[err.code];
  if (!words) return err.message || String(err);
  // For these the server's message says what exactly was wrong.
  if (DETAILED.has(err.code) && err.message) return `${words}: ${err.message}`;
  return words;
}
