// A local IPFS node speaking the Kubo RPC API, for tests and development on machines where no
// Kubo binary can be installed: js-ipfs' libraries (npm ipfs@0.66.1, installed next to a copy
// of this file by scripts/install-tools), offline, no swarm, no bootstrap, API on loopback.
// Usage: node ipfs-node.mjs REPO_DIR API_MULTIADDR   (e.g. /ip4/127.0.0.1/tcp/5001)
// Prints "ready" once the API answers; stops on SIGTERM/SIGINT.

if (!Promise.withResolvers) {
  // Node 20 lacks it; the libraries use it.
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const [repo, api] = process.argv.slice(2)
if (!repo || !api) {
  console.error('usage: node ipfs-node.mjs REPO_DIR API_MULTIADDR')
  process.exit(2)
}
const { create } = await import('ipfs-core')
const { HttpApi } = await import('ipfs-http-server')
const ipfs = await create({
  repo,
  offline: true,
  start: false,
  silent: true,
  config: { Addresses: { Swarm: [], API: api, Gateway: '' }, Bootstrap: [] },
})
const server = new HttpApi(ipfs)
await server.start()
console.log('ready')
const stop = async () => { await server.stop(); await ipfs.stop(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
