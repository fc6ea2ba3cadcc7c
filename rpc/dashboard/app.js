// perpchain dashboard: the script of rpc/dashboard/index.html, served by rpc/dashboard_http.py.
//
// Data: one JSON-RPC batch on load (status, blockchain, validator_votes, market_stats,
// lending_pools), then the node's websocket (/websocket): `blocks` (height, recent blocks),
// `book` per market (best bid / ask, from the snapshot and its sequenced updates) and
// `funding` (settlements). Each `blocks` notification triggers at most one JSON-RPC batch
// (validator_votes, market_stats, lending_pools), never more than one in flight: no timer
// polls the node. Every value goes into the page with textContent, never as HTML.
"use strict";

(() => {
  const MAX_BLOCKS = 20;        // rows of the recent-blocks table
  const MAX_BOOKS = 40;         // book subscriptions (the node allows 50 per connection)
  const RETRY_MAX_MS = 30000;   // websocket reconnect backoff cap
  const NOT_FOUND = -32601;     // JSON-RPC: method not found

  const $ = (id) => document.getElementById(id);
  const live = {
    ws: null, nextId: 1, replies: new Map(), subs: new Map(), books: new Map(),
    markets: new Map(), retryMs: 1000, refreshing: false, again: false, pools: true,
    loaded: false,
  };

  // -- rendering helpers (text only) ------------------------------------------------------
  function setText(el, value) {
    el.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }
  function addCell(tr, value, cls) {
    const td = document.createElement("td");
    setText(td, value);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function clock(t) {
    const d = new Date(t);
    return Number.isNaN(d.getTime()) ? t : d.toLocaleTimeString();
  }
  function short(hex) { return hex && hex.length > 16 ? hex.slice(0, 12) + "…" : hex; }
  function showError(msg) {
    const el = $("error");
    el.hidden = !msg;
    el.textContent = msg;
  }

  // -- JSON-RPC over HTTP ----------------------------------------------------------------
  async function rpcBatch(calls) {
    const body = calls.map(([method, params], i) => (
      {jsonrpc: "2.0", id: i, method: method, params: params || {}}));
    const resp = await fetch("/", {method: "POST", body: JSON.stringify(body),
                                   headers: {"content-type": "application/json"}});
    const out = await resp.json();
    if (!Array.isArray(out)) throw new Error(out.error ? out.error.message : "bad response");
    const byId = new Map(out.map((r) => [r.id, r]));
    return calls.map((_, i) => byId.get(i) || {error: {code: 0, message: "no response"}});
  }

  // -- sections --------------------------------------------------------------------------
  function renderStatus(st) {
    setText($("chain-id"), st.node_info.network);
    setText($("moniker"), st.node_info.moniker);
    setHeight(st.sync_info.latest_block_height, st.sync_info.latest_block_time);
  }
  function setHeight(height, time) {
    const el = $("height");
    if (Number(height) >= Number(el.dataset.height || 0)) {
      el.dataset.height = height;
      setText(el, height);
      setText($("block-time"), clock(time));
    }
  }

  function addBlock(b) {   // {height, time, txs, failed, hash}
    const tbody = $("blocks").tBodies[0];
    const rows = Array.from(tbody.rows);
    if (rows.some((r) => r.dataset.height === b.height)) return;
    const tr = document.createElement("tr");
    tr.dataset.height = b.height;
    addCell(tr, b.height);
    addCell(tr, clock(b.time));
    addCell(tr, b.failed ? `${b.txs} (${b.failed} failed)` : b.txs);
    addCell(tr, short(b.hash), "mono").title = b.hash;
    const after = rows.find((r) => Number(r.dataset.height) < Number(b.height));
    tbody.insertBefore(tr, after || null);
    while (tbody.rows.length > MAX_BLOCKS) tbody.deleteRow(tbody.rows.length - 1);
  }

  function renderValidators(v) {
    setText($("validators-height"), `at height ${v.height}`);
    const tbody = $("validators").tBodies[0];
    tbody.replaceChildren();
    for (const val of v.validators) {
      const tr = document.createElement("tr");
      addCell(tr, short(val.address), "mono").title = val.address;
      addCell(tr, val.voting_power);
      const voted = val.precommitted_last_height;
      addCell(tr, val.signed_last_commit ? "yes" : (voted ? "late" : "no"), voted ? "" : "no");
      addCell(tr, val.last_signed_height);
      addCell(tr, val.last_signed_time ? clock(val.last_signed_time) : null);
      const lv = val.last_vote;
      addCell(tr, lv ? `${lv.type} ${lv.height}/${lv.round}${lv.block_hash ? "" : " nil"}` : null);
      tbody.appendChild(tr);
    }
  }

  const MARKET_CELLS = ["market", "kind", "bid", "ask", "mark", "oracle", "funding",
                        "predicted", "next", "oi"];
  function marketRow(symbol) {
    let row = live.markets.get(symbol);
    if (row) return row;
    const tr = document.createElement("tr");
    tr.dataset.market = symbol;
    row = {tr: tr};
    for (const c of MARKET_CELLS) row[c] = addCell(tr, null, c);
    $("markets").tBodies[0].appendChild(tr);
    live.markets.set(symbol, row);
    return row;
  }
  function renderMarkets(ms) {
    setText($("markets-height"), `at height ${ms.height}`);
    for (const m of ms.markets) {
      const row = marketRow(m.market);
      setText(row.market, m.market);
      setText(row.kind, m.kind);
      if (!live.books.has(m.market)) {   // no live book: the query's best levels
        setText(row.bid, m.best_bid);
        setText(row.ask, m.best_ask);
      }
      setText(row.mark, m.mark_price);
      setText(row.oracle, m.oracle_price);
      setText(row.funding, m.funding_rate_8h);
      setText(row.predicted, m.predicted_funding_rate_8h);
      setText(row.next, m.next_funding_ms ? clock(Number(m.next_funding_ms)) : null);
      setText(row.oi, m.open_interest);
    }
  }

  function renderPools(res) {
    if (res.error) {
      if (res.error.code === NOT_FOUND) live.pools = false;   // this node has no lending
      $("pools-section").hidden = true;
      return;
    }
    const r = res.result;
    const list = Array.isArray(r) ? r : Object.values(r || {}).find(Array.isArray) || [];
    if (r && r.height !== undefined) setText($("pools-height"), `at height ${r.height}`);
    const cols = [];
    for (const p of list) {
      for (const k of Object.keys(p)) if (!cols.includes(k)) cols.push(k);
    }
    const head = $("pools").tHead.rows[0];
    head.replaceChildren();
    for (const c of cols) {
      const th = document.createElement("th");
      setText(th, c.replaceAll("_", " "));
      head.appendChild(th);
    }
    const tbody = $("pools").tBodies[0];
    tbody.replaceChildren();
    for (const p of list) {
      const tr = document.createElement("tr");
      for (const c of cols) {
        const v = p[c];
        addCell(tr, v !== null && typeof v === "object" ? JSON.stringify(v) : v);
      }
      tbody.appendChild(tr);
    }
    $("pools-section").hidden = false;
  }

  // -- queries: on load, then at most once per block ---------------------------------------
  function perBlockCalls() {
    const calls = [["validator_votes"], ["market_stats"]];
    if (live.pools) calls.push(["lending_pools"]);
    return calls;
  }
  function applyPerBlock(answers) {
    const [votes, stats, pools] = answers;
    if (votes.result) renderValidators(votes.result);
    if (stats.result) renderMarkets(stats.result);
    if (pools) renderPools(pools);
    const bad = [votes, stats].find((a) => a.error);
    showError(bad ? `query failed: ${bad.error.message}` : "");
  }

  async function load() {
    const [st, chain, ...rest] = await rpcBatch(
      [["status"], ["blockchain"], ...perBlockCalls()]);
    if (st.result) renderStatus(st.result);
    if (chain.result) {
      for (const m of chain.result.block_metas) {
        addBlock({height: m.header.height, time: m.header.time, txs: m.num_txs,
                  failed: 0, hash: m.block_id.hash});
      }
    }
    applyPerBlock(rest);
    live.loaded = Boolean(st.result);
  }

  async function refresh() {   // coalesced: one batch in flight, one more if blocks came
    if (live.refreshing) { live.again = true; return; }
    live.refreshing = true;
    try {
      do {
        live.again = false;
        applyPerBlock(await rpcBatch(perBlockCalls()));
      } while (live.again);
    } catch (e) {
      showError(`query failed: ${e.message}`);
    } finally {
      live.refreshing = false;
    }
  }

  // -- websocket ---------------------------------------------------------------------------
  function request(method, params) {
    return new Promise((resolve) => {
      const id = live.nextId++;
      live.replies.set(id, resolve);
      live.ws.send(JSON.stringify({jsonrpc: "2.0", id: id, method: method, params: params}));
    });
  }

  function bestOf(levels, higher) {
    let best = null;
    for (const p of levels.keys()) {
      if (best === null || (higher ? Number(p) > Number(best) : Number(p) < Number(best))) best = p;
    }
    return best;
  }
  function showBook(symbol) {
    const book = live.books.get(symbol);
    const row = marketRow(symbol);
    setText(row.bid, bestOf(book.bids, true));
    setText(row.ask, bestOf(book.asks, false));
  }
  function setLevels(side, levels) {
    for (const lv of levels) {
      if (Number(lv.size) === 0) side.delete(lv.price);
      else side.set(lv.price, lv.size);
    }
  }
  async function subscribeBook(symbol) {
    const r = await request("subscribe", {topic: "book", market: symbol});
    if (!r.result) return;
    const snap = r.result.snapshot;
    const book = {sub: r.result.subscription, sequence: snap.sequence,
                  bids: new Map(), asks: new Map()};
    setLevels(book.bids, snap.bids);
    setLevels(book.asks, snap.asks);
    live.subs.set(book.sub, symbol);
    live.books.set(symbol, book);
    showBook(symbol);
  }
  async function onBookUpdate(sub, u) {
    const symbol = live.subs.get(sub);   // none: an old subscription's last update
    const book = symbol === undefined ? undefined : live.books.get(symbol);
    if (!book) return;
    if (u.sequence !== book.sequence + 1) {   // a gap: start again from a snapshot
      live.books.delete(symbol);
      live.subs.delete(book.sub);
      await request("unsubscribe", {subscription: book.sub});
      await subscribeBook(symbol);
      return;
    }
    book.sequence = u.sequence;
    setLevels(book.bids, u.bids);
    setLevels(book.asks, u.asks);
    showBook(symbol);
  }

  function onNotification(p) {
    const topic = p.topic.topic;
    const r = p.result;
    if (topic === "blocks") {
      setHeight(r.height, r.time);
      addBlock({height: r.height, time: r.time, txs: r.num_txs, failed: r.num_txs_failed,
                hash: r.hash});
      refresh();
    } else if (topic === "book") {
      onBookUpdate(p.subscription, r);
    } else if (topic === "funding" && r.funding.length) {
      setText(marketRow(r.market).funding, r.funding[r.funding.length - 1].rate_8h);
    }
  }

  function onMessage(ev) {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.method === "subscription" && msg.params) {
      onNotification(msg.params);
    } else if (live.replies.has(msg.id)) {
      const resolve = live.replies.get(msg.id);
      live.replies.delete(msg.id);
      resolve(msg);
    }
  }

  function setConn(up, message) {
    const el = $("conn");
    el.className = up ? "up" : "down";
    setText(el, message);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/websocket`);
    live.ws = ws;
    ws.onmessage = onMessage;
    ws.onopen = async () => {
      live.retryMs = 1000;
      setConn(true, "connected");
      await request("subscribe", {topic: "blocks"});
      await request("subscribe", {topic: "funding"});
      if (live.loaded) {
        refresh();   // what happened while (re)connecting
      } else {       // the node was not reachable when the page loaded
        await load().catch((e) => showError(`cannot reach the node: ${e.message}`));
      }
      for (const symbol of Array.from(live.markets.keys()).slice(0, MAX_BOOKS)) {
        await subscribeBook(symbol);
      }
    };
    ws.onclose = (ev) => {
      live.replies.clear();
      live.subs.clear();
      live.books.clear();
      const why = ev.reason ? `${ev.code} ${ev.reason}` : `code ${ev.code}`;
      setConn(false, `disconnected (${why}); retrying in ${live.retryMs / 1000}s`);
      setTimeout(connect, live.retryMs);
      live.retryMs = Math.min(live.retryMs * 2, RETRY_MAX_MS);
    };
  }

  load()
    .catch((e) => showError(`cannot reach the node: ${e.message}`))
    .finally(connect);
})();
