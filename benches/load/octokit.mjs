// The @octokit/webhooks baseline of the ingest bench: verify the signature
// and parse the delivery with the official middleware, nothing else.
// Started by benches/run.sh (which installs the package from npm).
import { createServer } from "node:http";
import { Webhooks, createNodeMiddleware } from "@octokit/webhooks";

const webhooks = new Webhooks({ secret: process.env.GITHUB_WEBHOOK_SECRET });
const middleware = createNodeMiddleware(webhooks, { path: "/webhook/github" });
createServer(middleware).listen(Number(process.env.PORT || 8092), "127.0.0.1");
