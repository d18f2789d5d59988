// Drives the official @segment/analytics-node against a local collector for the interop
// tests: node analytics_node.js '<json config>'. Config: {host, path?, settings?, calls:
// [[method, params], ...], flushTimeout?}. Makes the calls, then closeAndFlush(), then
// prints one JSON line: every request analytics-node made (url, its headers, the batch
// and its messageIds), every response status, and per call its callback's error (null:
// delivered).
'use strict'

const { Analytics } = require('@segment/analytics-node')

async function main () {
  const config = JSON.parse(process.argv[2])
  const analytics = new Analytics({
    writeKey: 'interop-node-key',
    host: config.host,
    ...(config.path ? { path: config.path } : {}),
    ...(config.settings || {})
  })
  const requests = []
  const responses = []
  const errors = []
  analytics.on('http_request', (request) => {
    const body = JSON.parse(request.body)
    requests.push({
      url: request.url,
      method: request.method,
      headers: request.headers,
      messageIds: body.batch.map((message) => message.messageId),
      batch: body.batch,
      writeKey: body.writeKey,
      sentAt: body.sentAt
    })
  })
  analytics.on('http_response', (response) => responses.push(response.status))
  analytics.on('error', (error) => errors.push(String(error && (error.reason || error.code || error))))
  const results = await Promise.all(config.calls.map(([method, params]) => new Promise((resolve) => {
    analytics[method](params, (error) => resolve(error ? String(error.reason || error) : null))
  })).concat([analytics.closeAndFlush({ timeout: config.flushTimeout || 20000 }).then(() => 'closed')]))
  const closed = results.pop()
  process.stdout.write(JSON.stringify({ requests, responses, errors, results, closed }) + '\n')
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack) + '\n')
  process.exit(1)
})
