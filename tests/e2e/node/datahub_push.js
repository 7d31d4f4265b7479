// Push a folder to a hub with DataHub's own client library, unchanged: datahub-client's
// DataHub.push of a dataset loaded by data.js. Prints the push's answer as JSON.
//   HUB=http://... TOKEN=... OWNERID=... OWNER=... node datahub_push.js <folder> <findability>
"use strict";

const { DataHub } = require("datahub-client");
const { Dataset } = require("data.js");

async function main() {
  const [folder, findability] = process.argv.slice(2);
  const dataset = await Dataset.load(folder);
  const hub = new DataHub({
    apiUrl: process.env.HUB,
    token: process.env.TOKEN,
    ownerid: process.env.OWNERID,
    owner: process.env.OWNER,
  });
  try {
    const out = await hub.push(dataset, { findability: findability || "published" });
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    hub.close();
  }
}

main().catch((error) => {
  process.stderr.write(`push failed: ${error.stack || error}\n`);
  process.exit(1);
});
