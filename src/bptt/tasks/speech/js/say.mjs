// Say a batch of words with the npm engines GnuSpeech and SAM, in one node process
// (starting node and GnuSpeech's WebAssembly takes most of the time of a word).
//
//   node say.mjs <npm prefix>  < batch.json
//
// batch.json: [{"engine": "gnuspeech", "text": "seven", "voice": "female",
//               "tempo": 1.1, "pitch_offset": -2.0, "out": "/tmp/0.wav"},
//              {"engine": "sam", "text": "seven", "speed": 72, "pitch": 64,
//               "throat": 128, "mouth": 128, "out": "/tmp/1.wav"}, ...]
// Each item's WAV goes to its "out" (GnuSpeech: 16-bit, 44.1 kHz; SAM: 8-bit, 22.05 kHz).
// An item that fails is named on stderr and the exit status is 1; the others are written.
import { writeFileSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const prefix = process.argv[2]
const modules = join(prefix, 'node_modules')
const items = JSON.parse(readFileSync(0, 'utf8'))

let gnuspeech = null // {module, manager, control}: loaded on the first GnuSpeech item
async function loadGnuspeech() {
  const root = join(modules, '@echogarden', 'gnuspeech-wasm')
  const url = (p) => pathToFileURL(join(root, p)).href
  const { default: initializer } = await import(url('wasm/gnuspeech.js'))
  const { defaultTrmControlModelFileContent: control } = await import(
    url('dist/utilities/DefaultTrmControlModel.js')
  )
  const { wrapEmscriptenModuleHeap } = createRequire(join(root, 'package.json'))(
    'wasm-heap-manager'
  )
  const module = await initializer()
  return { module, manager: wrapEmscriptenModuleHeap(module), control }
}

// The control model's line "key = ..." (not a commented-out "#key = ...") set to value;
// a key the package's model lacks is an error, not a setting silently left at its default.
function setting(config, key, value) {
  const line = new RegExp(`^${key} = .*$`, 'm')
  if (!line.test(config)) throw new Error(`GnuSpeech's control model has no "${key} = " line`)
  return config.replace(line, `${key} = ${value}`)
}

// The package's synthesize(), with the pitch offset (semitones) set as well, and the
// intonation's random part off (the same word, rate and pitch: the same samples).
function sayGnuspeech({ text, voice, tempo, pitch_offset }) {
  const { module: m, manager, control } = gnuspeech
  let config = setting(control, 'voice_name', voice)
  config = setting(config, 'tempo', tempo)
  config = setting(config, 'pitch_offset', pitch_offset)
  config = setting(config, 'random_intonation', 0)
  m.FS.writeFile('/data/en/trm_control_model.txt', config)
  const refs = [text, './out.wav', '/data/en', './out-params.txt'].map((s) =>
    manager.allocNullTerminatedUtf8String(s)
  )
  m._GnuSpeech_synthesizeToFile(...refs.map((r) => r.address), false)
  const wav = m.FS.readFile('./out.wav')
  refs.forEach((r) => r.free())
  return wav
}

let SamJs = null
function saySam({ text, speed, pitch, throat, mouth }) {
  const wav = new SamJs({ speed, pitch, throat, mouth }).wav(text)
  if (!(wav instanceof Uint8Array)) throw new Error(`SAM could not say ${JSON.stringify(text)}`)
  return wav
}

let failed = 0
for (const item of items) {
  try {
    let wav
    if (item.engine === 'gnuspeech') {
      gnuspeech ??= await loadGnuspeech()
      wav = sayGnuspeech(item)
    } else if (item.engine === 'sam') {
      SamJs ??= createRequire(join(modules, 'sam-js', 'package.json'))('sam-js')
      wav = saySam(item)
    } else {
      throw new Error(`engine must be gnuspeech or sam; got ${JSON.stringify(item.engine)}`)
    }
    writeFileSync(item.out, wav)
  } catch (e) {
    failed += 1
    process.stderr.write(`${item.engine} (${JSON.stringify(item.text)}): ${e.message ?? e}\n`)
  }
}
process.exit(failed ? 1 : 0)
