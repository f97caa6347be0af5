// Start s3rver's own command line (bin/s3rver.js, same options) as a server that verifies the V2 signatures
// esdk-obs-python sends to an IP endpoint, with a key pair of its own:
// - the pair comes from the environment (S3RVER_TEST_ACCESS_KEY / S3RVER_TEST_SECRET_KEY), so each test
//   server has its own secret and a request signed with any other is refused;
// - s3rver 3.7 checks V2 header signatures (lib/middleware/authentication.js) but leaves the Date line of the
//   string to sign empty, which is right only for clients that send x-amz-date (the JS aws-sdk does; the OBS
//   SDK sends Date), so every correct OBS SDK request would fail: the Date header goes into that line when
//   there is no x-amz-date, as AWS's V2 scheme says. The patch is applied to the source as loaded; if the
//   line it patches is not found the server does not start.
'use strict';
const fs = require('fs');
const Module = require('module');
const path = require('path');

const bin = process.argv[2];  // the real path of s3rver's bin/s3rver.js
const lib = path.join(path.dirname(bin), '..', 'lib');
const authFile = path.join(lib, 'middleware', 'authentication.js');
const target = 'const result = parseHeader(ctx.headers);\n      ({ signature, signatureProvided } = result);';
const source = fs.readFileSync(authFile, 'utf8');
if (!source.includes(target)) {
  throw new Error('s3rver_keys.js: unexpected ' + authFile + ' (another s3rver version?): cannot verify Date');
}
const patched = source.replace(target, target +
  "\n      canonicalRequest.timestamp = ctx.headers['x-amz-date'] ? '' : ctx.headers['date'];");
const mod = new Module(authFile, module);
mod.filename = authFile;
mod.paths = Module._nodeModulePaths(path.dirname(authFile));
mod._compile(patched, authFile);
mod.loaded = true;
require.cache[authFile] = mod;

const account = require(path.join(lib, 'models', 'account'));
account.DUMMY_ACCOUNT.createKeyPair(process.env.S3RVER_TEST_ACCESS_KEY, process.env.S3RVER_TEST_SECRET_KEY);
process.argv.splice(1, 1);  // argv is now [node, bin, options...], as if bin had been run
require(bin);
