// Why there are no suggestions yet: the status the client shows while the model starts or loads
// (a failed load carries its own message already).
import type { ServerStatus } from '../protocol';

export function explainStatus(status: ServerStatus): ServerStatus {
  if (status.message) return status;
  if (status.state === 'starting') return { ...status, message: 'Kiln is starting: the model loads once the settings arrive' };
  if (status.state === 'loading') return { ...status, message: status.model ? `Loading model ${status.model}…` : 'Loading the model…' };
  return status;
}
