// The table of implemented CRI methods. A method missing here answers
// UNIMPLEMENTED. One module per RPC or closely related group of RPCs.
import type { CallInfo, CriContext } from './context';
import { version } from './version';
import { status } from './status';
import { runtimeConfig } from './runtime_config';
import { runPodSandbox } from './sandbox_run';
import { removePodSandbox, stopPodSandbox } from './sandbox_stop_remove';
import { listPodSandbox, podSandboxStatus, streamPodSandboxes } from './sandbox_status';
import { updateRuntimeConfig } from './update_runtime_config';
import { updatePodSandboxResources } from './sandbox_update';
import { pullImage } from './image_pull';
import { listImages, streamImages } from './image_list';
import { imageStatus } from './image_status';
import { removeImage } from './image_remove';
import { imageFsInfo } from './image_fs_info';
import { exec } from './exec';
import { attach } from './attach';
import { portForward } from './port_forward';

import { checkpointContainer } from './container_checkpoint';
import { createContainer } from './container_create';
import { removeContainer, startContainer, stopContainer } from './container_lifecycle';
import { listContainers, streamContainers } from './container_list';
import { containerStatus } from './container_status';
import { execSync } from './container_exec_sync';
import { reopenContainerLog, updateContainerResources } from './container_update';
import { getContainerEvents, type ServerStreamSink } from './container_events';
import {
  containerStats,
  listContainerStats,
  listPodSandboxStats,
  podSandboxStats,
  streamContainerStats,
  streamPodSandboxStats,
} from './container_stats';
import { listMetricDescriptors, listPodSandboxMetrics, streamPodSandboxMetrics } from './pod_metrics';

// Each handler is typed against its own request/response in its module; the
// table erases that because gRPC dispatches by method name (`never`: any
// handler fits, and the server passes the decoded message it got for that name).
export type Handler = (ctx: CriContext, req: never, call: CallInfo) => Promise<unknown>;

export const HANDLERS: Record<string, Handler | undefined> = {
  Version: version,
  Status: status,
  RuntimeConfig: runtimeConfig,
  RunPodSandbox: runPodSandbox,
  StopPodSandbox: stopPodSandbox,
  RemovePodSandbox: removePodSandbox,
  PodSandboxStatus: podSandboxStatus,
  ListPodSandbox: listPodSandbox,
  UpdatePodSandboxResources: updatePodSandboxResources,
  UpdateRuntimeConfig: updateRuntimeConfig,
  CreateContainer: createContainer,
  StartContainer: startContainer,
  StopContainer: stopContainer,
  RemoveContainer: removeContainer,
  ListContainers: listContainers,
  ContainerStatus: containerStatus,
  ExecSync: execSync,
  UpdateContainerResources: updateContainerResources,
  ReopenContainerLog: reopenContainerLog,
  CheckpointContainer: checkpointContainer,
  ContainerStats: containerStats,
  ListContainerStats: listContainerStats,
  PodSandboxStats: podSandboxStats,
  ListPodSandboxStats: listPodSandboxStats,
  ListMetricDescriptors: listMetricDescriptors,
  ListPodSandboxMetrics: listPodSandboxMetrics,
  PullImage: pullImage,
  ListImages: listImages,
  ImageStatus: imageStatus,
  RemoveImage: removeImage,
  ImageFsInfo: imageFsInfo,
  Exec: exec,
  Attach: attach,
  PortForward: portForward,
};

/** Server-streaming methods: the handler writes to the sink until the client leaves or it fails. */
export type StreamHandler = (ctx: CriContext, req: never, sink: ServerStreamSink<never>) => Promise<void>;

export const STREAM_HANDLERS: Record<string, StreamHandler | undefined> = {
  GetContainerEvents: getContainerEvents,
  StreamPodSandboxes: streamPodSandboxes,
  StreamContainers: streamContainers,
  StreamContainerStats: streamContainerStats,
  StreamPodSandboxStats: streamPodSandboxStats,
  StreamPodSandboxMetrics: streamPodSandboxMetrics,
  StreamImages: streamImages,
};
