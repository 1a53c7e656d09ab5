import { createCipheriv } from 'node:crypto';

/** The fixed key VNC password files are obscured with (TigerVNC's and RealVNC's `vncpasswd`). */
const PASSWORD_FILE_KEY = Buffer.from([23, 82, 107, 6, 35, 78, 88, 7]);

/**
 * Single DES in ECB mode with VNC's key: each byte's bits reversed. OpenSSL 3 keeps
 * `des-ecb` in its legacy provider, but 3DES with the key doubled (K‖K) is single DES.
 */
function vncDes(key: Buffer, data: Buffer): Buffer {
  const reversed = Buffer.alloc(8);
  for (let i = 0; i < 8; i++) {
    let b = key[i] ?? 0;
    let r = 0;
    for (let bit = 0; bit < 8; bit++) {
      r = (r << 1) | (b & 1);
      b >>= 1;
    }
    reversed[i] = r;
  }
  const cipher = createCipheriv('des-ede-ecb', Buffer.concat([reversed, reversed]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/** A VNC password as its key: the first 8 bytes (UTF-8), NUL-padded. */
function passwordKey(password: string): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, 'utf8').copy(key, 0, 0, 8);
  return key;
}

/** The VncAuth answer to the server's 16-byte challenge: the challenge DES-encrypted with the password. */
export function vncAuthResponse(challenge: Buffer, password: string): Buffer {
  return vncDes(passwordKey(password), challenge);
}

/** The 8-byte password file `vncpasswd -f` writes (obscured, not protected), for a viewer's `-PasswordFile`. */
export function vncPasswordFile(password: string): Buffer {
  return vncDes(PASSWORD_FILE_KEY, passwordKey(password));
}
