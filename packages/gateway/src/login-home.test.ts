import { describe, expect, it } from 'vitest';
import { expandLoginHome } from './login-home.js';

describe('expandLoginHome', () => {
  it("writes Ansible's ~<remote_user> as ~, quoted or not", () => {
    expect(expandLoginHome("/bin/sh -c 'echo '\"'\"'~admin+db-1'\"'\"' && sleep 0'", 'admin+db-1')).toBe(
      "/bin/sh -c 'echo '\"'\"'~'\"'\"' && sleep 0'",
    );
    expect(expandLoginHome("/bin/sh -c 'echo ~admin:db-1 && sleep 0'", 'admin:db-1')).toBe("/bin/sh -c 'echo ~ && sleep 0'");
    expect(expandLoginHome('mkdir -p "` echo ~admin+Lab.db-1+root/.ansible/tmp `"', 'admin+Lab.db-1+root')).toBe(
      'mkdir -p "` echo ~/.ansible/tmp `"',
    );
  });

  it('leaves everything else as the user wrote it', () => {
    expect(expandLoginHome('echo ~admin+db-10', 'admin+db-1')).toBe('echo ~admin+db-10');
    expect(expandLoginHome('echo x~admin+db-1', 'admin+db-1')).toBe('echo x~admin+db-1');
    expect(expandLoginHome('echo ~root ~/x', 'admin+db-1')).toBe('echo ~root ~/x');
    expect(expandLoginHome('echo ~admin', 'admin')).toBe('echo ~admin');
    expect(expandLoginHome('echo ~a.b+c', 'a.b+c')).toBe('echo ~');
    expect(expandLoginHome('echo ~aXb+c', 'a.b+c')).toBe('echo ~aXb+c');
  });
});
