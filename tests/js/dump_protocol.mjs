// Prints the browser's protocol declarations (static/chat/protocol.js) as one JSON object,
// for the Python test that compares them with the server's. Run: node tests/js/dump_protocol.mjs
import {
  CLIENT,
  CLOSE,
  COMMON_FIELDS,
  DIRECT_ERROR,
  DONE_STATUSES,
  EVENT,
  EVENT_FIELDS,
  RUN_ERROR,
  SERVER_FRAME,
} from "../../static/chat/protocol.js";

process.stdout.write(
  JSON.stringify({ EVENT, EVENT_FIELDS, COMMON_FIELDS, DONE_STATUSES, RUN_ERROR, SERVER_FRAME, CLIENT, DIRECT_ERROR, CLOSE }) + "\n"
);
