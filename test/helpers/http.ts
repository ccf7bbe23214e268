// GET a URL's body as text, over HTTP or (with `ca`) HTTPS.
import * as http from 'node:http';
import * as https from 'node:https';

export function fetchText(url: string, ca?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const onRes = (res: http.IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    };
    (ca ? https.get(url, { ca }, onRes) : http.get(url, onRes)).on('error', reject);
  });
}
