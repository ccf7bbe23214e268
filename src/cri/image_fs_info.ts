// ImageFsInfo: bytes and inodes used by image layers under the snapshotter
// root, and the mountpoint of the filesystem they live on.
import type { ImageFsInfoRequest__Output } from '../gen/runtime/v1/ImageFsInfoRequest';
import type { ImageFsInfoResponse } from '../gen/runtime/v1/ImageFsInfoResponse';
import type { CriContext } from './context';
import { nowNs } from '../util/time';

export async function imageFsInfo(ctx: CriContext, _req: ImageFsInfoRequest__Output): Promise<ImageFsInfoResponse> {
  const images = ctx.images;
  const u = await images.usage();
  const timestamp = nowNs();
  return {
    imageFilesystems: [
      {
        timestamp,
        fsId: { mountpoint: u.mountpoint },
        usedBytes: { value: u.bytes.toString() },
        inodesUsed: { value: u.inodes.toString() },
      },
    ],
    containerFilesystems: [],
  };
}
