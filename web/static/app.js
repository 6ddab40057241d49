// depot upload page. Plain JavaScript, no build step; tus-js-client (vendored,
// /static/vendor/tus.min.js) does the resumable uploads. Served under a strict
// Content Security Policy: no inline script or style anywhere.
'use strict';

(function () {
  const API = '/api/v1';
  const TOKEN_KEY = 'depot.token';
  const TUS_PREFIX = 'depot.tus::';
  const MAX_PARALLEL = 3;
  const CHUNK_SIZE = 32 * 1024 * 1024; // one PATCH per 32 MiB: under common proxy body limits
  const LOCAL_HASH_LIMIT = 256 * 1024 * 1024; // hash in the browser up to this size
  // Delays between automatic retries after a network drop or a 5xx/429. The
  // counter restarts whenever bytes get through, so a long upload survives any
  // number of separate drops; only ~15 minutes without progress gives up.
  const RETRY_DELAYS = [0, 1000, 2000, 3000, 5000, 5000, 10000, 10000, 15000, 20000, 30000,
    30000, 30000, 60000, 60000, 60000, 60000, 60000, 60000, 60000, 60000, 60000, 60000];

  const SSO_EXPIRED = 'Your single sign-on session was not accepted for this request (it may have expired). Reload the page to sign in again.';
  const $ = (id) => document.getElementById(id);
  const state = {
    token: null,
    csrf: null, // anti-forgery token of a single sign-on session (cookie)
    provider: '',
    me: null,
    cohort: null,
    uploads: [],
    nextId: 1,
    filesNext: '',
  };

  // ---------- small helpers ----------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c) e.append(c);
    return e;
  }

  function fmtBytes(n) {
    if (!isFinite(n)) return '–';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
  }

  function fmtDuration(s) {
    if (!isFinite(s) || s < 0) return '–';
    s = Math.round(s);
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  function fmtDate(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso || '';
    return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  function encodePath(p) {
    return p.split('/').map(encodeURIComponent).join('/');
  }

  function fileURL(cohort, path) {
    return API + '/files/' + encodeURIComponent(cohort) + '/' + encodePath(path);
  }

  // With a token, the token; with a single sign-on session (an HttpOnly
  // cookie the page cannot read), its anti-forgery token, which the server
  // requires on every request that changes something.
  function authHeaders() {
    if (state.token) return { Authorization: 'Bearer ' + state.token };
    return state.csrf ? { 'X-Depot-Csrf': state.csrf } : {};
  }

  function oidcSession() { return !!(state.me && state.me.auth_method === 'oidc' && !state.token); }

  const SESSION_ENDED = 'Your session has ended. Sign in again to continue; unfinished uploads resume where they stopped.';

  function announce(text) {
    const live = $('live');
    live.textContent = '';
    // A fresh text node after a tick makes screen readers announce repeats too.
    setTimeout(() => { live.textContent = text; }, 50);
  }

  function showAlert(text) {
    const a = $('alert');
    if (!text) { a.hidden = true; a.textContent = ''; return; }
    a.textContent = '';
    a.append(el('span', { text }), el('button', {
      type: 'button', class: 'btn btn-quiet', text: 'Dismiss', onclick: () => showAlert(''),
    }));
    a.hidden = false;
  }

  // Human sentences for HTTP statuses (the API's own message is added when it helps).
  function statusMessage(status, action) {
    switch (status) {
      case 0: return 'The server could not be reached. Check your network connection.';
      case 400: return 'The server refused the request' + (action ? ' to ' + action : '') + ': the name or path is not allowed.';
      case 401: return 'Your sign-in is no longer valid (the token is wrong, expired or revoked). Please sign in again.';
      case 403: return 'You do not have permission to ' + (action || 'do this') + ' in this cohort.';
      case 404: return 'The file or upload no longer exists on the server.';
      case 409: return 'The upload is out of step with the server; it will be resumed from the server\'s position.';
      case 413: return 'The file is larger than this server accepts.';
      case 415: return 'The server did not accept the type of request.';
      case 429: return 'Too many uploads or requests at once. Wait a moment and try again.';
      case 460: return 'The data arrived damaged (checksum mismatch); nothing was stored. Try again.';
      case 500: return 'The server hit an internal error. Try again; if it persists, contact your administrator.';
      case 502: case 504: return 'The server is not responding right now. Try again in a few minutes.';
      case 503: return 'The storage service is temporarily unavailable; nothing was lost. Try again in a few minutes.';
    }
    return 'The server answered with an unexpected error (HTTP ' + status + ').';
  }

  async function api(method, path, opts) {
    opts = opts || {};
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers: Object.assign({}, authHeaders(), opts.headers || {}),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (e) {
      const err = new Error(statusMessage(0));
      err.status = 0;
      throw err;
    }
    if (!resp.ok) {
      const err = new Error(statusMessage(resp.status, opts.action));
      err.status = resp.status;
      if (resp.status === 401 && state.me) {
        if (state.token) signOut(err.message);
        else if (oidcSession()) signOut(SESSION_ENDED, true);
        else err.message = SSO_EXPIRED;
      }
      throw err;
    }
    return resp;
  }

  // ---------- sign-in ----------

  async function fetchMe(token) {
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    let resp;
    try {
      resp = await fetch(API + '/me', { headers, credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      return { error: statusMessage(0) };
    }
    if (resp.ok) return { me: await resp.json() };
    return { status: resp.status, error: statusMessage(resp.status) };
  }

  async function boot() {
    $('noscript').hidden = true;
    if (typeof tus === 'undefined' || !tus.isSupported) {
      showAlert('This browser cannot run the uploader. Use a current version of Firefox, Chrome, Edge or Safari.');
    }
    showSignInError();
    const auth = await loadAuthConfig();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      const r = await fetchMe(saved);
      if (r.me) { state.token = saved; return signedIn(r.me); }
      sessionStorage.removeItem(TOKEN_KEY);
      if (r.status !== 401) showAlert(r.error);
    }
    // A single sign-on session (cookie), or a single-sign-on proxy in front:
    // the request is authenticated without a token.
    // With single sign-on on and no session cookie, there is nobody to ask about.
    if (!auth || auth.session) {
      const sso = await fetchMe(null);
      if (sso.me) return signedIn(sso.me);
      if (sso.status && sso.status !== 401) showAlert(sso.error);
    }
    showSignIn();
  }

  // The page's "Sign in with <provider>", when the server offers it.
  async function loadAuthConfig() {
    try {
      const resp = await fetch(API + '/auth/config', { credentials: 'same-origin', cache: 'no-store' });
      if (!resp.ok) return null;
      const c = await resp.json();
      if (!c.enabled) return null;
      state.provider = c.provider || 'your institution';
      $('sso-name').textContent = state.provider;
      $('sso-btn').setAttribute('href', c.login_url || '/auth/login');
      $('sso').hidden = false;
      $('signin-btn').classList.remove('btn-primary'); // the provider's button is the main way in
      return c;
    } catch (e) { return null; /* the token form still works */ }
  }

  // Why a single sign-on did not complete (?signin_error=…, set by the server).
  function showSignInError() {
    const params = new URLSearchParams(location.search);
    const code = params.get('signin_error');
    if (!code) return;
    history.replaceState(null, '', location.pathname);
    const msg = {
      refused: 'The sign-in was refused. If you have no depot account yet, ask your administrator; otherwise try again.',
      throttled: 'Too many failed sign-ins from your address. Wait a few minutes and try again.',
      unavailable: 'The sign-in service is not reachable right now. Try again in a few minutes.',
      too_large: 'Your identity provider sent more than a browser session can hold. Tell your administrator.',
    }[code] || 'The sign-in did not complete. Try again.';
    const e = $('sso-error');
    e.textContent = msg;
    e.hidden = false;
    e.dataset.code = code;
  }

  function showSignIn(message) {
    $('app').hidden = true;
    $('who').hidden = true;
    $('signin').hidden = false;
    const e = $('signin-error');
    e.hidden = !message;
    e.textContent = message || '';
    $('token').value = '';
    $('token').focus();
  }

  async function onSignIn(ev) {
    ev.preventDefault();
    const token = $('token').value.trim();
    const errEl = $('signin-error');
    if (!token) {
      errEl.textContent = 'Enter your access token.';
      errEl.hidden = false;
      $('token').focus();
      return;
    }
    $('signin-btn').disabled = true;
    const r = await fetchMe(token);
    $('signin-btn').disabled = false;
    if (!r.me) {
      errEl.textContent = r.status === 401
        ? 'That token was not accepted. Check that you copied all of it and that it has not expired or been revoked.'
        : r.error;
      errEl.hidden = false;
      $('token').select();
      return;
    }
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    signedIn(r.me);
  }

  function signedIn(me) {
    state.me = me;
    showAlert('');
    $('signin').hidden = true;
    $('app').hidden = false;
    $('who').hidden = false;
    const sso = me.auth_method === 'trusted_header';
    state.csrf = (!state.token && me.csrf_token) || null;
    const via = me.auth_method === 'oidc' ? ' (via ' + (state.provider || 'single sign-on') + ')' : '';
    $('who-name').textContent = 'Signed in as ' + me.user + (sso ? ' (single sign-on)' : '') + via;
    // Under single sign-on the proxy owns the session; nothing to forget here.
    $('signout').hidden = sso;

    const sel = $('cohort');
    sel.textContent = '';
    const cohorts = (me.cohorts || []).filter((c) => c.can_upload || c.can_read);
    for (const c of cohorts) sel.append(el('option', { value: c.name, text: c.name + ' (' + c.role + ')' }));
    if (cohorts.length === 0) {
      showAlert('You have no access to any cohort yet. Ask a cohort manager or an administrator for a grant.');
      $('dropzone').hidden = true;
      return;
    }
    const last = sessionStorage.getItem('depot.cohort');
    if (last && cohorts.some((c) => c.name === last)) sel.value = last;
    selectCohort(sel.value);
    announce('Signed in as ' + me.user + '.');
    sel.focus();
  }

  // keepUploads (a session that ended by itself): the addresses of
  // unfinished uploads stay in this tab, so that they resume after the next
  // sign-in.
  function signOut(message, keepUploads) {
    for (const u of state.uploads) if (u.state === 'uploading' || u.state === 'queued' || u.state === 'retrying') pauseUpload(u, true);
    // Forget everything this tab kept: the token and unfinished-upload addresses.
    for (let i = sessionStorage.length - 1; i >= 0; i--) {
      const k = sessionStorage.key(i);
      if (k && k.startsWith('depot.') && !(keepUploads && k.startsWith(TUS_PREFIX))) sessionStorage.removeItem(k);
    }
    state.token = null;
    state.csrf = null;
    state.me = null;
    state.uploads = [];
    $('uploads').textContent = '';
    $('files-body').textContent = '';
    showSignIn(message);
    announce(message || 'Signed out.');
  }

  // The Sign out button: a single sign-on session is ended on the server too
  // (the refresh token is revoked, the sign-out audited, the cookie deleted).
  async function userSignOut() {
    if (oidcSession()) {
      $('signout').disabled = true;
      try {
        await fetch(API + '/auth/logout', { method: 'POST', headers: authHeaders(), credentials: 'same-origin', cache: 'no-store' });
      } catch (e) { /* the cookie expires by itself */ }
      $('signout').disabled = false;
    }
    signOut();
  }

  // ---------- cohort ----------

  function cohortInfo() {
    return ((state.me && state.me.cohorts) || []).find((c) => c.name === state.cohort) || {};
  }

  function selectCohort(name) {
    state.cohort = name;
    sessionStorage.setItem('depot.cohort', name);
    const info = cohortInfo();
    const can = [];
    if (info.can_upload) can.push('upload');
    if (info.can_read) can.push('download');
    if (info.can_delete) can.push('delete');
    $('cohort-role').textContent = 'Your role: ' + info.role + (can.length ? ' — you can ' + can.join(', ') + '.' : '.');
    $('dropzone').hidden = !info.can_upload;
    $('file-input').disabled = !info.can_upload;
    $('upload-forbidden').hidden = !!info.can_upload;
    $('files-cohort').textContent = name;
    refreshFiles();
    showResumable();
  }

  // ---------- resumable-upload storage (tus-js-client urlStorage) ----------

  // Like tus-js-client's default storage, but in sessionStorage: upload
  // addresses (and file names) stay in this tab and are forgotten when it
  // closes or the user signs out, which suits shared workstations. A page
  // reload keeps them, so reloads resume.
  const urlStorage = {
    _find(prefix) {
      const out = [];
      for (let i = 0; i < sessionStorage.length; i++) {
        const k = sessionStorage.key(i);
        if (!k || !k.startsWith(prefix)) continue;
        try {
          const u = JSON.parse(sessionStorage.getItem(k));
          u.urlStorageKey = k;
          out.push(u);
        } catch (e) { /* ignore a malformed entry */ }
      }
      return out;
    },
    findAllUploads() { return Promise.resolve(this._find(TUS_PREFIX)); },
    findUploadsByFingerprint(fp) { return Promise.resolve(this._find(TUS_PREFIX + fp + '::')); },
    removeUpload(key) { sessionStorage.removeItem(key); return Promise.resolve(); },
    addUpload(fp, upload) {
      const key = TUS_PREFIX + fp + '::' + Math.round(Math.random() * 1e12);
      sessionStorage.setItem(key, JSON.stringify(upload));
      return Promise.resolve(key);
    },
  };

  function fingerprintOf(file, cohort, path) {
    return ['v1', state.me.user, cohort, path, file.size, file.lastModified].map(String).map(encodeURIComponent).join('/');
  }

  async function showResumable() {
    const list = $('resumable-list');
    list.textContent = '';
    const active = new Set(state.uploads.filter((u) => u.state !== 'done' && u.state !== 'cancelled').map((u) => u.fingerprint));
    const all = (await urlStorage.findAllUploads()).filter((u) => {
      const m = u.metadata || {};
      const fp = u.urlStorageKey.slice(TUS_PREFIX.length).replace(/::\d+$/, '');
      return m.cohort === state.cohort && !active.has(fp);
    });
    for (const u of all) {
      const m = u.metadata || {};
      list.append(el('li', { text: (m.path || m.filename) + ' — ' + fmtBytes(u.size) + ', started ' + fmtDate(u.creationTime) }));
    }
    $('resumable').hidden = all.length === 0;
  }

  // ---------- uploads ----------

  function targetPath(file) {
    const folder = $('folder').value.trim().replace(/^\/+|\/+$/g, '');
    return folder ? folder + '/' + file.name : file.name;
  }

  function addFiles(files) {
    const info = cohortInfo();
    if (!info.can_upload) {
      showAlert(statusMessage(403, 'upload'));
      return;
    }
    const cls = $('temporary').checked ? 'temporary' : 'permanent';
    let n = 0;
    for (const file of files) {
      const u = {
        id: state.nextId++, file, cohort: state.cohort, path: targetPath(file), cls,
        state: 'queued', sent: 0, samples: [], retries: 0, drops: 0, resumedAt: null, error: '',
        serverSha: '', localSha: null, localShaPromise: null,
      };
      u.fingerprint = fingerprintOf(file, u.cohort, u.path);
      state.uploads.push(u);
      renderUpload(u);
      n++;
    }
    if (n) announce(n === 1 ? 'One file added to the uploads.' : n + ' files added to the uploads.');
    pump();
  }

  function activeCount() {
    return state.uploads.filter((u) => u.state === 'uploading' || u.state === 'retrying').length;
  }

  function pump() {
    for (const u of state.uploads) {
      if (activeCount() >= MAX_PARALLEL) return;
      if (u.state === 'queued') startUpload(u);
    }
  }

  function startUpload(u) {
    u.state = 'uploading';
    u.error = '';
    u.samples = [{ t: performance.now(), b: u.sent }];
    if (!u.tus) {
      u.tus = new tus.Upload(u.file, {
        endpoint: API + '/uploads/',
        chunkSize: CHUNK_SIZE,
        retryDelays: RETRY_DELAYS,
        headers: authHeaders(),
        metadata: { cohort: u.cohort, filename: u.file.name, path: u.path, class: u.cls },
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        urlStorage,
        fingerprint: () => Promise.resolve(u.fingerprint),
        onShouldRetry(err, attempt) {
          const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
          const retry = status === 0 || status === 409 || status === 423 || status === 429 || status >= 500;
          if (retry && u.state !== 'paused' && u.state !== 'cancelled') {
            u.retries++;
            if (u.state !== 'retrying') u.drops++;
            u.state = 'retrying';
            const delay = RETRY_DELAYS[attempt] || 0;
            u.note = status === 0
              ? 'Connection lost. Reconnecting' + (delay >= 1000 ? ' in ' + Math.round(delay / 1000) + ' s' : '') + '…'
              : statusMessage(status) + ' Retrying' + (delay >= 1000 ? ' in ' + Math.round(delay / 1000) + ' s' : '') + '…';
            if (u.retries === 1 || attempt === 0) announce(u.file.name + ': connection lost, the upload will resume by itself.');
            renderUpload(u);
          }
          return retry;
        },
        onAfterResponse(req, res) {
          // A HEAD tells where the server stands: the upload resumes from there.
          if (req.getMethod() === 'HEAD' && res.getStatus() === 200) {
            const off = parseInt(res.getHeader('Upload-Offset'), 10);
            if (off >= 0) {
              u.resumedAt = off;
              u.sent = off;
              u.samples = [{ t: performance.now(), b: off }];
              if (u.state === 'retrying') u.state = 'uploading';
              u.note = 'Resumed at ' + fmtBytes(off) + ' (' + pct(off, u.file.size) + '%).';
              announce(u.file.name + ': resumed at ' + pct(off, u.file.size) + ' percent.');
              renderUpload(u);
            }
          }
        },
        onProgress(sent) {
          if (u.state === 'retrying') { u.state = 'uploading'; }
          u.sent = sent;
          const now = performance.now();
          u.samples.push({ t: now, b: sent });
          while (u.samples.length > 2 && now - u.samples[0].t > 6000) u.samples.shift();
          if (!u.lastRender || now - u.lastRender > 200) { u.lastRender = now; renderUpload(u); }
        },
        onSuccess() { finished(u); },
        onError(err) {
          const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
          u.state = 'error';
          u.retryable = status === 0 || status === 409 || status === 423 || status === 429 || status >= 500;
          u.error = status === 0
            ? 'The connection to the server was lost and could not be restored. Press Resume to try again; the upload continues where it stopped.'
            : statusMessage(status, 'upload');
          if (status === 401 && !state.token) u.error = oidcSession() ? SESSION_ENDED : SSO_EXPIRED;
          announce(u.file.name + ': ' + u.error);
          renderUpload(u);
          if (status === 401 && state.token) signOut(statusMessage(401));
          else if (status === 401 && oidcSession()) signOut(SESSION_ENDED, true);
          pump();
        },
      });
      if (u.file.size <= LOCAL_HASH_LIMIT && window.crypto && crypto.subtle) {
        u.localShaPromise = u.file.arrayBuffer()
          .then((buf) => crypto.subtle.digest('SHA-256', buf))
          .then((d) => { u.localSha = Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join(''); })
          .catch(() => { u.localSha = null; });
      }
      u.note = 'Starting…';
      renderUpload(u);
      u.tus.findPreviousUploads().then((prev) => {
        if (u.state !== 'uploading') return;
        if (prev.length) {
          u.tus.resumeFromPreviousUpload(prev[0]);
          u.note = 'Continuing an earlier upload of this file…';
          announce(u.file.name + ': continuing an earlier upload.');
        }
        u.tus.start();
      });
    } else {
      u.note = 'Resuming…';
      u.tus.options.headers = authHeaders();
      u.tus.start();
    }
    renderUpload(u);
  }

  function pauseUpload(u, quiet) {
    if (!u.tus || !(u.state === 'uploading' || u.state === 'retrying' || u.state === 'queued')) {
      if (u.state === 'queued') { u.state = 'paused'; renderUpload(u); }
      return;
    }
    u.tus.abort(false);
    u.state = 'paused';
    u.note = 'Paused at ' + pct(u.sent, u.file.size) + '%. The server keeps what has arrived.';
    if (!quiet) announce(u.file.name + ' paused.');
    renderUpload(u);
    pump();
  }

  function resumeUpload(u) {
    u.state = 'queued';
    u.note = 'Waiting…';
    announce(u.file.name + ' resumed.');
    renderUpload(u);
    pump();
  }

  async function cancelUpload(u) {
    const prev = u.state;
    u.state = 'cancelled';
    u.note = 'Cancelled; the partial data was discarded.';
    renderUpload(u);
    if (u.tus && prev !== 'done') {
      try { await u.tus.abort(true); } catch (e) { /* already gone on the server */ }
    }
    announce(u.file.name + ' cancelled.');
    pump();
    showResumable();
  }

  async function finished(u) {
    u.state = 'verifying';
    u.sent = u.file.size;
    u.note = 'Checking the stored file…';
    renderUpload(u);
    try {
      const resp = await api('HEAD', fileURL(u.cohort, u.path), { action: 'read files' });
      u.serverSha = (resp.headers.get('Depot-Sha256') || '').toLowerCase();
    } catch (e) {
      u.serverSha = '';
    }
    if (u.localShaPromise) await u.localShaPromise;
    u.state = 'done';
    if (u.localSha && u.serverSha && u.localSha !== u.serverSha) {
      u.state = 'error';
      u.error = 'The SHA-256 on the server differs from the file on this computer. Upload it again and tell your administrator.';
    } else if (u.localSha && u.serverSha) {
      u.note = 'Stored and verified: the SHA-256 computed by the server matches the file on this computer.';
    } else if (u.serverSha) {
      u.note = 'Stored; the server verified the SHA-256 of the whole file.';
    } else {
      u.note = 'Stored. (Its SHA-256 could not be read back: your role may not allow reading files.)';
    }
    if (u.state === 'done' && u.drops > 0) {
      u.note += ' The connection dropped ' + (u.drops === 1 ? 'once' : u.drops + ' times') +
        '; the upload resumed where it stopped' + (u.resumedAt ? ' (last at ' + fmtBytes(u.resumedAt) + ')' : '') + '.';
    }
    announce(u.file.name + (u.state === 'done' ? ' uploaded.' : ': ' + u.error));
    renderUpload(u);
    pump();
    scheduleRefresh();
    showResumable();
  }

  function pct(a, b) {
    if (!b) return 100;
    return Math.min(100, Math.floor((a / b) * 1000) / 10);
  }

  function speedOf(u) {
    const s = u.samples;
    if (s.length < 2) return NaN;
    const dt = (s[s.length - 1].t - s[0].t) / 1000;
    if (dt < 0.5) return NaN;
    return (s[s.length - 1].b - s[0].b) / dt;
  }

  const STATE_LABEL = {
    queued: 'Waiting', uploading: 'Uploading', retrying: 'Reconnecting', paused: 'Paused',
    verifying: 'Verifying', done: 'Done', error: 'Failed', cancelled: 'Cancelled',
  };

  function renderUpload(u) {
    let li = document.getElementById('upload-' + u.id);
    if (!li) {
      li = el('li', { id: 'upload-' + u.id, class: 'upload' });
      const title = el('div', { class: 'up-title' },
        el('span', { class: 'up-name' }), el('span', { class: 'up-state badge' }));
      const bar = el('progress', { class: 'up-bar', max: '100', value: '0', 'aria-label': 'Progress of ' + u.file.name });
      const meta = el('div', { class: 'up-meta' });
      const note = el('p', { class: 'up-note' });
      const sha = el('p', { class: 'up-sha', hidden: true });
      const err = el('p', { class: 'up-error', hidden: true });
      const btns = el('div', { class: 'up-actions' },
        el('button', { type: 'button', class: 'btn btn-small up-pause', onclick: () => pauseUpload(u) }, 'Pause'),
        el('button', { type: 'button', class: 'btn btn-small up-resume', onclick: () => resumeUpload(u) }, 'Resume'),
        el('button', { type: 'button', class: 'btn btn-small btn-danger up-cancel', onclick: () => cancelUpload(u) }, 'Cancel'),
        el('button', { type: 'button', class: 'btn btn-small btn-quiet up-dismiss', onclick: () => dismissUpload(u) }, 'Remove from list'));
      li.append(title, bar, meta, note, err, sha, btns);
      $('uploads').prepend(li);
    }
    const p = pct(u.sent, u.file.size);
    li.dataset.state = u.state;
    li.dataset.progress = String(p);
    li.dataset.retries = String(u.retries);
    li.dataset.resumedAt = u.resumedAt === null ? '' : String(u.resumedAt);
    li.querySelector('.up-name').textContent = u.cohort + '/' + u.path;
    const badge = li.querySelector('.up-state');
    badge.textContent = STATE_LABEL[u.state] || u.state;
    badge.className = 'up-state badge badge-' + u.state;
    const bar = li.querySelector('.up-bar');
    bar.value = p;
    bar.setAttribute('aria-valuetext', p + '%');
    let meta = fmtBytes(u.sent) + ' of ' + fmtBytes(u.file.size) + ' · ' + p + '%';
    if (u.state === 'uploading') {
      const sp = speedOf(u);
      if (isFinite(sp) && sp > 0) meta += ' · ' + fmtBytes(sp) + '/s · ' + fmtDuration((u.file.size - u.sent) / sp) + ' left';
    }
    li.querySelector('.up-meta').textContent = meta;
    li.querySelector('.up-note').textContent = u.state === 'error' ? '' : (u.note || '');
    const err = li.querySelector('.up-error');
    err.hidden = u.state !== 'error';
    err.textContent = u.state === 'error' ? u.error : '';
    const sha = li.querySelector('.up-sha');
    sha.hidden = !(u.state === 'done' && u.serverSha);
    sha.textContent = '';
    if (u.state === 'done' && u.serverSha) {
      sha.append(el('span', { class: 'sha-label', text: 'SHA-256 ' }), el('code', { class: 'sha-value', text: u.serverSha }),
        u.localSha === u.serverSha ? el('span', { class: 'sha-ok', text: ' ✓ matches your file' }) : null);
    }
    const show = (cls, on) => { li.querySelector(cls).hidden = !on; };
    show('.up-pause', u.state === 'uploading' || u.state === 'retrying' || u.state === 'queued');
    show('.up-resume', u.state === 'paused' || (u.state === 'error' && u.tus && u.retryable));
    show('.up-cancel', u.state !== 'done' && u.state !== 'cancelled' && u.state !== 'verifying');
    show('.up-dismiss', u.state === 'done' || u.state === 'cancelled' || u.state === 'error');
  }

  function dismissUpload(u) {
    const li = document.getElementById('upload-' + u.id);
    const next = li && (li.nextElementSibling || li.previousElementSibling);
    if (li) li.remove();
    state.uploads = state.uploads.filter((x) => x !== u);
    const focusTarget = next && next.querySelector('button:not([hidden])');
    (focusTarget || $('file-input')).focus();
  }

  // ---------- file list ----------

  let refreshTimer = null;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshFiles, 300);
  }

  async function refreshFiles(append) {
    const info = cohortInfo();
    const body = $('files-body');
    $('files-forbidden').hidden = !!info.can_read;
    if (!info.can_read) {
      $('files').hidden = true; $('files-empty').hidden = true; $('more').hidden = true;
      return;
    }
    const cohort = state.cohort;
    let url = API + '/files/' + encodeURIComponent(cohort) + '/?limit=200';
    if (append && state.filesNext) url += '&after=' + encodeURIComponent(state.filesNext);
    let data;
    try {
      const resp = await api('GET', url, { action: 'list files' });
      data = await resp.json();
    } catch (e) {
      showAlert('Could not load the file list. ' + e.message);
      return;
    }
    if (cohort !== state.cohort) return; // the user switched meanwhile
    if (!append) body.textContent = '';
    for (const f of data.files || []) body.append(fileRow(cohort, f, info));
    state.filesNext = data.next || '';
    $('more').hidden = !state.filesNext;
    const empty = body.children.length === 0;
    $('files').hidden = empty;
    $('files-empty').hidden = !empty;
  }

  function fileRow(cohort, f, info) {
    const name = f.path.split('/').pop();
    const dl = el('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Download ' + f.path },
      'Download');
    dl.addEventListener('click', () => download(cohort, f, dl));
    const hist = el('button', { type: 'button', class: 'btn btn-small', 'aria-expanded': 'false', 'aria-label': 'Versions of ' + f.path },
      'Versions');
    const actions = el('td', { class: 'actions' }, dl, hist);
    if (info.can_delete) {
      const del = el('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': 'Delete ' + f.path }, 'Delete');
      del.addEventListener('click', () => removeFile(cohort, f, del));
      actions.append(del);
    }
    const row = el('tr', {},
      el('td', { class: 'path' }, el('span', { text: f.path, title: name }),
        f.class === 'temporary' ? el('span', { class: 'badge badge-temp', text: 'temporary' }) : null),
      el('td', { class: 'num', text: fmtBytes(f.size) }),
      el('td', { text: fmtDate(f.modified) }),
      el('td', {}, el('code', { class: 'sha-short', title: f.sha256, text: (f.sha256 || '').slice(0, 12) + '…' })),
      actions);
    hist.addEventListener('click', () => toggleVersions(cohort, f, info, row, hist));
    if (openVersions.has(cohort + '/' + f.path)) toggleVersions(cohort, f, info, row, hist);
    return row;
  }

  // The versions of a file, in a row below it: every kept version with its
  // uploader and hash, a download of each, and (for managers) "Make
  // current" to restore an old one.
  // A list refreshed while versions are open shows them open again.
  const openVersions = new Set();

  async function toggleVersions(cohort, f, info, row, btn) {
    const key = cohort + '/' + f.path;
    const next = row.nextElementSibling;
    if (next && next.classList.contains('versions-row')) {
      next.remove();
      openVersions.delete(key);
      btn.setAttribute('aria-expanded', 'false');
      return;
    }
    if (btn.dataset.loading) return; // a second click while loading
    btn.dataset.loading = '1';
    openVersions.add(key);
    let data;
    try {
      const resp = await api('GET', fileURL(cohort, f.path) + '?versions', { action: 'see versions' });
      data = await resp.json();
    } catch (e) {
      openVersions.delete(key);
      showAlert('Could not load the versions of ' + f.path + '. ' + e.message);
      return;
    } finally {
      delete btn.dataset.loading;
    }
    if (!row.isConnected) return; // the list was refreshed meanwhile: its new row shows them
    const list = el('ul', { class: 'versions', 'aria-label': 'Versions of ' + f.path });
    for (const v of data.versions || []) {
      const get = el('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Download version ' + v.version }, 'Download');
      get.addEventListener('click', () => download(cohort, Object.assign({}, f, { version: v.version }), get));
      const item = el('li', { class: 'version' },
        el('code', { title: v.version, text: v.version.slice(0, 8) }),
        v.current ? el('span', { class: 'badge', text: 'current' }) : null,
        el('span', { text: ' ' + fmtBytes(v.size) + ', ' + fmtDate(v.modified) + ', by ' + (v.uploaded_by || '?') + ' ' }),
        el('code', { class: 'sha-short', title: v.sha256, text: (v.sha256 || '').slice(0, 12) + '…' }),
        get);
      if (info.can_delete && !v.current) {
        const restore = el('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Make version ' + v.version + ' current' }, 'Make current');
        restore.addEventListener('click', async () => {
          restore.disabled = true;
          try {
            await api('POST', fileURL(cohort, f.path) + '?restore=' + encodeURIComponent(v.version), { action: 'restore versions' });
            announce('Version ' + v.version.slice(0, 8) + ' of ' + f.path + ' is current again.');
            openVersions.delete(key);
            await refreshFiles();
          } catch (e) {
            restore.disabled = false;
            showAlert('Could not restore that version. ' + e.message);
          }
        });
        item.append(restore);
      }
      list.append(item);
    }
    const cell = el('td', { colspan: '5' }, list);
    row.after(el('tr', { class: 'versions-row' }, cell));
    btn.setAttribute('aria-expanded', 'true');
  }

  // Download with the token in a header (never in the URL). Without a token
  // (single sign-on) the browser downloads directly, streaming to disk;
  // with a token the body is fetched into memory first (see docs/web-ui.md).
  async function download(cohort, f, btn) {
    const name = f.path.split('/').pop();
    if (!state.token) {
      const href = fileURL(cohort, f.path) + (f.version ? '?version=' + encodeURIComponent(f.version) : '');
      const a = el('a', { href, download: name });
      document.body.append(a); a.click(); a.remove();
      return;
    }
    btn.disabled = true;
    const label = btn.textContent;
    btn.textContent = 'Downloading…';
    announce('Downloading ' + name + '.');
    try {
      const url = fileURL(cohort, f.path) + (f.version ? '?version=' + encodeURIComponent(f.version) : '');
      const resp = await api('GET', url, { action: 'download files' });
      const blob = await resp.blob();
      const href = URL.createObjectURL(blob);
      const a = el('a', { href, download: name });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60000);
      announce(name + ' downloaded.');
    } catch (e) {
      showAlert('Could not download ' + f.path + '. ' + e.message);
    } finally {
      btn.disabled = false;
      btn.textContent = label;
    }
  }

  async function removeFile(cohort, f, btn) {
    if (!window.confirm('Delete ' + cohort + '/' + f.path + '? Its versions are kept for the retention period, in which a manager can undelete it.')) return;
    btn.disabled = true;
    try {
      await api('DELETE', fileURL(cohort, f.path), { action: 'delete files' });
      announce(f.path + ' deleted.');
      await refreshFiles();
      $('refresh').focus();
    } catch (e) {
      btn.disabled = false;
      showAlert('Could not delete ' + f.path + '. ' + e.message);
    }
  }

  // ---------- wiring ----------

  function wire() {
    $('signin-form').addEventListener('submit', onSignIn);
    $('signout').addEventListener('click', () => userSignOut());
    $('cohort').addEventListener('change', (e) => selectCohort(e.target.value));
    $('refresh').addEventListener('click', () => refreshFiles());
    $('more').addEventListener('click', () => refreshFiles(true));
    const input = $('file-input');
    input.addEventListener('change', () => {
      addFiles(Array.from(input.files || []));
      input.value = '';
    });
    const dz = $('dropzone');
    let depth = 0;
    dz.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; dz.classList.add('over'); });
    dz.addEventListener('dragover', (e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; });
    dz.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; dz.classList.remove('over'); } });
    dz.addEventListener('drop', (e) => {
      e.preventDefault();
      depth = 0;
      dz.classList.remove('over');
      addFiles(Array.from(e.dataTransfer.files || []));
    });
    // A file dropped outside the zone must not navigate away from the page.
    window.addEventListener('dragover', (e) => e.preventDefault());
    window.addEventListener('drop', (e) => e.preventDefault());
    window.addEventListener('online', () => {
      for (const u of state.uploads) if (u.state === 'error' && u.tus && u.retryable) resumeUpload(u);
    });
    window.addEventListener('beforeunload', (e) => {
      if (state.uploads.some((u) => u.state === 'uploading' || u.state === 'retrying')) {
        e.preventDefault();
        e.returnValue = '';
      }
    });
  }

  wire();
  boot();
})();
