import type { RotationPolicyAnswer } from '@gatehouse/api';
import type { RotationPolicy } from '@gatehouse/db';

/** A rotation policy as the API shows it; a user since removed is named by their id. */
export function presentRotationPolicy(p: RotationPolicy): RotationPolicyAnswer {
  return {
    scope: p.scope,
    scopeId: p.scopeId,
    everyDays: p.everyDays,
    afterSession: p.afterSession,
    credential: p.credential,
    passwordLength: p.passwordLength,
    passwordClasses: p.passwordClasses,
    privilegedAccount: p.privilegedAccount,
    setBy: { id: p.setBy.id, username: p.setBy.username ?? p.setBy.id },
    updatedAt: p.updatedAt,
  };
}
