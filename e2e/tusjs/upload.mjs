// Uploads one file to depot's tus endpoint with tus-js-client, the way a
// third-party client would, retrying and resuming after network failures.
//
//   node upload.mjs --endpoint http://HOST/api/v1/uploads/ --token TOKEN \
//        --file PATH --cohort c1 --filename NAME [--path DIR/NAME] \
//        [--class permanent|temporary] [--chunk-size BYTES] [--parallel N]
//
// The token is read from --token or the DEPOT_TOKEN environment variable.
// Progress goes to stdout, one line per event; the last line is
// "done <upload URL>" on success. Exit status 1 on failure.
import fs from 'node:fs'
import * as tus from 'tus-js-client'

function args (argv) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`)
    out[a.slice(2)] = argv[++i]
  }
  return out
}

const opt = args(process.argv.slice(2))
const token = opt.token || process.env.DEPOT_TOKEN
for (const k of ['endpoint', 'file', 'cohort', 'filename']) {
  if (!opt[k]) { console.error(`missing --${k}`); process.exit(2) }
}
if (!token) { console.error('missing --token or DEPOT_TOKEN'); process.exit(2) }

const size = fs.statSync(opt.file).size
const metadata = { cohort: opt.cohort, filename: opt.filename }
if (opt.path) metadata.path = opt.path
if (opt.class) metadata.class = opt.class

// --parallel N splits the upload into N partial uploads joined with the
// concatenation extension (Upload-Concat). Partial uploads carry the same
// metadata: depot needs at least "cohort" on them.
const parallel = Number(opt.parallel || 1)

let retries = 0
let lastPct = -1
// A parallel upload needs a source it can slice, and takes its size from it.
const source = parallel > 1 ? fs.readFileSync(opt.file) : fs.createReadStream(opt.file)
const upload = new tus.Upload(source, {
  endpoint: opt.endpoint,
  ...(parallel > 1 ? {} : { uploadSize: size }),
  chunkSize: Number(opt['chunk-size'] || 256 * 1024),
  headers: { Authorization: `Bearer ${token}` },
  metadata,
  ...(parallel > 1 ? { parallelUploads: parallel, metadataForPartialUploads: metadata } : {}),
  // Many retries with short delays: the test's proxy cuts connections on
  // purpose. tus-js-client resets the attempt counter on progress.
  retryDelays: [0, 50, 100, 200, 400, 800, 1000, 1000, 1000, 1000, 2000, 2000, 2000, 2000, 2000],
  removeFingerprintOnSuccess: true,
  onShouldRetry (err, attempt, options) {
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0
    retries++
    console.log(`retry attempt=${attempt} status=${status} error=${String(err.message).split('\n')[0]}`)
    return status === 0 || status === 409 || status === 423 || status >= 500
  },
  onProgress (sent, total) {
    const pct = total ? Math.floor((sent / total) * 100) : 100
    if (pct !== lastPct) {
      lastPct = pct
      console.log(`progress ${sent}/${total} ${pct}%`)
    }
  },
  onChunkComplete (chunk, accepted, total) {
    console.log(`chunk accepted=${accepted}/${total}`)
  },
  onError (err) {
    console.error(`error: ${err.message}`)
    process.exit(1)
  },
  onSuccess () {
    console.log(`retries ${retries}`)
    console.log(`done ${upload.url}`)
  }
})
upload.start()
