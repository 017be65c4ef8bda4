// Listening on a unix socket with a given mode: a stale socket file is removed first (never
// another kind of file), and the socket is created under a umask that gives it no more than
// `mode` from the start. With a group id, the socket is then given to that group (nginx's
// workers' group, the only other users that may connect).

import fs from "node:fs";

export async function listenUnix(server, path, mode, group = null) {
  let stat = null;
  try {
    stat = fs.lstatSync(path);
  } catch (error) {
    if (error.code !== "ENOENT") throw error;
  }
  if (stat !== null) {
    if (!stat.isSocket()) throw new Error(`${path} exists and is not a socket`);
    fs.unlinkSync(path);
  }
  const previous = process.umask(0o777 & ~mode);
  try {
    await new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } finally {
    process.umask(previous);
  }
  if (group !== null) fs.chownSync(path, -1, group);
  fs.chmodSync(path, mode);
}
